package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/lakesession/lakesession/bunstore/sqlitedb"
	"github.com/lakesession/lakesession/examples/internal/demo"
)

func main() {
	server := flag.String("server", "", "path of the agentserver binary (required)")
	dir := flag.String("dir", "", "directory for the SQLite file (default: a new temporary directory, removed afterwards)")
	flag.Parse()
	if *server == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: demo -server PATH [-dir DIR]")
		os.Exit(2)
	}
	if err := run(*server, *dir, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "demo: FAILED:", err)
		os.Exit(1)
	}
}

var listeningRE = regexp.MustCompile(`msg=listening url=(http://\S+)`)

func run(server, dir string, w io.Writer) (err error) {
	// The server's log lines and the conversation are written from two
	// goroutines.
	out := &lockedWriter{w: w}
	if dir == "" {
		d, err := os.MkdirTemp("", "lakesession-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	dbPath := filepath.Join(dir, "agentserver.db")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	cmd := exec.Command(server, "-addr", "127.0.0.1:0")
	cmd.Env = append(offlineEnv(os.Environ()), "SQLITE_PATH="+dbPath)
	logs, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "starting %s on SQLite file %s\n", filepath.Base(server), dbPath)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the server: %w", err)
	}
	exited := make(chan error, 1)
	urls := make(chan string, 1)
	logsDone := make(chan struct{})
	go func() {
		defer close(logsDone)
		sc := bufio.NewScanner(logs)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintf(out, "  server | %s\n", line)
			if m := listeningRE.FindStringSubmatch(line); m != nil {
				select {
				case urls <- m[1]:
				default:
				}
			}
		}
	}()
	go func() {
		<-logsDone // Wait must not close the pipe while it is read
		exited <- cmd.Wait()
	}()
	stopped := false
	defer func() {
		if !stopped {
			cmd.Process.Kill()
			<-exited
		}
	}()

	var baseURL string
	select {
	case baseURL = <-urls:
	case err := <-exited:
		stopped = true
		return fmt.Errorf("the server exited before listening: %v", err)
	case <-ctx.Done():
		return errors.New("the server did not start listening within the time limit")
	}
	client := &http.Client{Timeout: 30 * time.Second}
	if err := demo.WaitReady(ctx, client, baseURL); err != nil {
		return err
	}
	fmt.Fprintf(out, "server ready at %s\n", baseURL)

	// SQLite's CURRENT_TIMESTAMP counts whole seconds: a second between
	// turns gives each turn's batch a created_at of its own.
	fmt.Fprintf(out, "(SQLite stamps created_at to the second: the demo waits a second between turns so that each turn's batch shows its own)\n")
	res, err := demo.ConverseSpaced(ctx, client, baseURL, out, 1100*time.Millisecond)
	if err != nil {
		return err
	}

	db, err := sqlitedb.Open(dbPath)
	if err != nil {
		return fmt.Errorf("open %s: %w", dbPath, err)
	}
	rows, err := demo.PrintRows(ctx, db, res.SessionID, out)
	db.Close()
	if err != nil {
		return err
	}
	if err := demo.CheckTurns(rows, res, out); err != nil {
		return err
	}

	fmt.Fprintf(out, "\nstopping the server with SIGTERM\n")
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case err := <-exited:
		stopped = true
		if err != nil {
			return fmt.Errorf("the server did not stop cleanly: %w", err)
		}
	case <-time.After(40 * time.Second):
		return errors.New("the server did not stop within 40s of SIGTERM")
	}
	fmt.Fprintf(out, "\ndemo OK: session %s: the second answer recalled SF, the third called get_weather for SF, each turn one batch\n", res.SessionID)
	return nil
}

// lockedWriter serializes writes to w.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// offlineEnv returns env without the variables that would make the server
// use a database server, Lakebase or a remote model.
func offlineEnv(env []string) []string {
	var kept []string
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case name == "DATABASE_URL", name == "SQLITE_PATH", name == "ADDR", name == "HISTORY_LIMIT",
			name == "DATABRICKS_SERVING_ENDPOINT",
			strings.HasPrefix(name, "LAKEBASE_"), strings.HasPrefix(name, "OPENAI_"):
			continue
		}
		kept = append(kept, kv)
	}
	return kept
}
