//go:build !linux

package pgserver

import "syscall"

// ProcAttr runs a test server (PostgreSQL, PgBouncer) as cred's user (nil: this user).
func ProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred}
}

// memDirRoom reports false: only Linux's /dev/shm is used.
func memDirRoom(dir string, room uint64) bool { return false }
