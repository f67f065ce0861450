//go:build linux

package main_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal: the program writes to slave, the test
// reads what a terminal would show from master.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal on this machine: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlock the pseudo-terminal: %v", err)
	}
	n, err := unix.IoctlGetUint32(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("name the pseudo-terminal: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open the pseudo-terminal: %v", err)
	}
	return m, s
}

// On a terminal, prune draws a progress bar on stderr; its result is still
// one plain line on stdout. (Off a terminal, stderr stays empty: see
// TestPostgresSessions/prune.)
func TestProgressBarOnTerminal(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "s.db")
	mustRun(t, nil, "", "migrate", "up", "--sqlite", path)
	db := openSQLite(t, path)
	seed(t, db)
	if _, err := db.Exec(`UPDATE agent_sessions SET updated_at = datetime(updated_at, '-40 days')`); err != nil {
		t.Fatal(err)
	}

	master, slave := openPTY(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "prune", "--older-than", "30d", "--batch-size", "1", "--sqlite", path)
	cmd.Env = cleanEnv(t)
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, slave
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close() // the child holds its own copy
	screen := make(chan []byte, 1)
	go func() {
		b, err := io.ReadAll(master)
		if err != nil && !errors.Is(err, syscall.EIO) { // EIO: the terminal's last writer closed it
			t.Errorf("read the terminal: %v", err)
		}
		screen <- b
	}()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("prune on a terminal: %v\n%s", err, stdout.String())
	}
	shown := string(<-screen)
	t.Logf("the terminal showed %q", shown)
	record(t, cmd.Args[1:], shown)
	record(t, cmd.Args[1:], stdout.String())
	if !strings.Contains(shown, "%") || !strings.Contains(shown, "sessions") || !strings.Contains(shown, "\r") {
		t.Errorf("no progress bar on the terminal; it showed %q", shown)
	}
	if strings.Contains(shown, "deleted") {
		t.Errorf("the result went to the terminal's stderr: %q", shown)
	}
	if got := stdout.String(); !strings.HasPrefix(got, "deleted 3 sessions, 8 items") || strings.Count(got, "\n") != 1 {
		t.Errorf("stdout = %q, want the one result line", got)
	}
}
