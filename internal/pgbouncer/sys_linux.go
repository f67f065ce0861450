package pgbouncer

import "syscall"

// procAttr runs PgBouncer as cred's user (nil: this user), and kills it
// when the test process dies.
func procAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
}
