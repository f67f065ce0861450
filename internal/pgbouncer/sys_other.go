//go:build !linux

package pgbouncer

import "syscall"

// procAttr runs PgBouncer as cred's user (nil: this user).
func procAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred}
}
