//go:build !unix

package cli

import (
	"errors"
	"os"
	"os/exec"
)

// execProcess runs path as a child with the terminal, and exits with its
// exit code, where the system cannot replace a process.
func execProcess(path string, argv []string, env []string) error {
	cmd := &exec.Cmd{Path: path, Args: argv, Env: env, Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		os.Exit(exit.ExitCode())
	}
	if err != nil {
		return err
	}
	os.Exit(0)
	return nil
}
