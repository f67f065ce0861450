//go:build unix

package cli

import "syscall"

// execProcess replaces the process with path, so that psql gets the
// terminal and the signals directly.
func execProcess(path string, argv []string, env []string) error {
	return syscall.Exec(path, argv, env)
}
