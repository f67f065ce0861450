package pgserver

import "syscall"

// ProcAttr runs a test server (PostgreSQL, PgBouncer) as cred's user (nil:
// this user), and kills it when the test process dies, so that no server
// outlives a crashed or timed-out test binary.
func ProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
}

// memDirRoom reports whether dir is a writable memory file system (tmpfs)
// with at least room bytes free.
func memDirRoom(dir string, room uint64) bool {
	const tmpfsMagic = 0x01021994
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil || st.Type != tmpfsMagic {
		return false
	}
	return st.Bavail*uint64(st.Bsize) >= room && syscall.Access(dir, 2 /* W_OK */) == nil
}
