package main_test

// These tests build the lakesession binary once and run it as a user does:
// against the PostgreSQL that `make test` starts (LAKESESSION_TEST_DATABASE_URL),
// an SQLite file, and a Lakebase target served by lakebasetest.

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
)

// binary is the lakesession binary TestMain built.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "lakesession-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "lakesession")
	// Built without the race detector, also under go test -race: an
	// instrumented binary takes about a second more to start, and these
	// tests start it some hundred times. The command's code runs under the
	// race detector in package cli's tests, in this process, and the
	// library's in its own packages' tests. (make test runs go vet first,
	// which leaves the packages compiled without -race in the build cache.)
	build := exec.Command(goTool(), "build", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "build the lakesession binary: %v\n", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	if leaks := printedSecrets(); len(leaks) > 0 {
		for _, l := range leaks {
			fmt.Fprintln(os.Stderr, "FAIL:", l)
		}
		code = 1
	}
	os.Exit(code)
}

// Every output of every run of the binary is kept, and when the tests are
// done it is searched for every secret the tests know of: the tokens each
// lakebasetest control plane minted, the Databricks token, role passwords.
// Only the stdout of a successful `lakesession token` may hold a token.
var printed struct {
	sync.Mutex
	outputs []output
	secrets []func() []string
}

type output struct {
	test, args, text string
}

// record keeps text, printed by the binary run with args in test t.
func record(t *testing.T, args []string, text string) {
	printed.Lock()
	defer printed.Unlock()
	printed.outputs = append(printed.outputs, output{t.Name(), strings.Join(args, " "), text})
}

// secrets adds a source of secrets that no output may contain; it is read
// after every test is done.
func secrets(source func() []string) {
	printed.Lock()
	defer printed.Unlock()
	printed.secrets = append(printed.secrets, source)
}

// printedSecrets returns a line for each output that contains a secret,
// without the secret.
func printedSecrets() []string {
	printed.Lock()
	defer printed.Unlock()
	var known []string
	for _, source := range printed.secrets {
		known = append(known, source()...)
	}
	var leaks []string
	for _, o := range printed.outputs {
		for _, s := range known {
			if len(s) >= 8 && strings.Contains(o.text, s) {
				leaks = append(leaks, fmt.Sprintf("%s: lakesession %s printed a secret (%d bytes)", o.test, o.args, len(s)))
			}
		}
	}
	if len(printed.outputs) == 0 && len(known) > 0 {
		leaks = append(leaks, "no output of the binary was recorded: the secret scan checked nothing")
	}
	return leaks
}

// goTool finds the go command: go test puts its own first on PATH.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(os.Getenv("GOROOT"), "bin", "go")
}

// result is what one run of the binary printed and returned.
type result struct {
	stdout, stderr string
	code           int
	pid            int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\n--- stdout\n%s--- stderr\n%s", r.code, clip(r.stdout), clip(r.stderr))
}

// clip keeps a failure message readable when an output holds large items.
func clip(s string) string {
	const most = 3000
	if len(s) <= most {
		return s
	}
	return s[:most] + fmt.Sprintf("... [%d more bytes]\n", len(s)-most)
}

// cleanEnv is the test process's environment without anything that could
// choose a database or a Databricks workspace for the binary, and with a
// HOME of its own (no ~/.databrickscfg, no ~/.pgpass).
func cleanEnv(t *testing.T) []string {
	t.Helper()
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case name == "DATABASE_URL", name == "HOME",
			strings.HasPrefix(name, "LAKEBASE_"), strings.HasPrefix(name, "DATABRICKS_"),
			strings.HasPrefix(name, "PG"):
			continue
		}
		env = append(env, kv)
	}
	return append(env, "HOME="+t.TempDir())
}

// lakesession runs the binary with args, extra environment variables
// (NAME=value) on top of cleanEnv, and stdin.
func lakesession(t *testing.T, env []string, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(cleanEnv(t), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	defer func() {
		// The token command prints its token on stdout: that is its job.
		if len(args) == 0 || args[0] != "token" || r.code != 0 {
			record(t, args, r.stdout)
		}
		record(t, args, r.stderr)
	}()
	if cmd.Process != nil {
		r.pid = cmd.Process.Pid
	}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	case err != nil:
		t.Fatalf("run lakesession %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// mustRun runs the binary and fails the test unless it exits 0.
func mustRun(t *testing.T, env []string, stdin string, args ...string) result {
	t.Helper()
	r := lakesession(t, env, stdin, args...)
	if r.code != 0 {
		t.Fatalf("lakesession %s: %v", strings.Join(args, " "), r)
	}
	return r
}

// wantExit fails the test unless the run exited with code and printed
// each of want (on stdout or stderr).
func wantExit(t *testing.T, r result, code int, want ...string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit code %d, want %d: %v", r.code, code, r)
	}
	for _, w := range want {
		if !strings.Contains(r.stdout+r.stderr, w) {
			t.Errorf("output lacks %q: %v", w, r)
		}
	}
}

// adminDSN returns the test server's superuser DSN (see requireEnv).
func adminDSN(t *testing.T) string {
	t.Helper()
	return requireEnv(t, "LAKESESSION_TEST_DATABASE_URL", "run `make test`, or set it to a superuser DSN")
}

// rootCert returns the test server's certificate (see requireEnv).
func rootCert(t *testing.T) string {
	t.Helper()
	return requireEnv(t, "LAKESESSION_TEST_SSLROOTCERT", "run `make test`, whose PostgreSQL has TLS")
}

// requireEnv returns the variable name: without it, it skips the test,
// and fails it under CI=true.
func requireEnv(t *testing.T, name, hint string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		msg := name + " is not set: " + hint
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return v
}

func openDB(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func randomHex(t *testing.T) string {
	t.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}

// newDatabase creates an empty database of the test's own on the test
// server, dropped when the test ends, and returns its name and a superuser
// URL for it (without TLS).
func newDatabase(t *testing.T) (name, dsn string) {
	t.Helper()
	admin := adminDSN(t)
	name = "lakesession_cli_" + randomHex(t)
	db := openDB(t, admin)
	if _, err := db.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		if _, err := db.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	return name, withParams(t, admin, map[string]string{"dbname": name})
}

// withParams returns the URL dsn with connection parameters set: "dbname"
// replaces the path, "user" and "password" the user info.
func withParams(t *testing.T, dsn string, params map[string]string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatalf("LAKESESSION_TEST_DATABASE_URL must be a postgres:// URL for these tests")
	}
	q := u.Query()
	for k, v := range params {
		switch k {
		case "dbname":
			u.Path = "/" + v
		case "user":
			if p, ok := u.User.Password(); ok {
				u.User = url.UserPassword(v, p)
			} else {
				u.User = url.User(v)
			}
		case "password":
			u.User = url.UserPassword(u.User.Username(), v)
		default:
			q.Set(k, v)
		}
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// tlsDSN returns dsn with TLS required and the server's certificate checked.
func tlsDSN(t *testing.T, dsn string) string {
	t.Helper()
	return withParams(t, dsn, map[string]string{"sslmode": "verify-full", "sslrootcert": rootCert(t)})
}

// rowsOf reads every stored item: session id and message_data bytes, in
// each session's order.
func rowsOf(t *testing.T, db *sql.DB) [][2]string {
	t.Helper()
	rows, err := db.Query("SELECT session_id, message_data FROM agent_messages ORDER BY session_id, created_at, id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out [][2]string
	for rows.Next() {
		var r [2]string
		if err := rows.Scan(&r[0], &r[1]); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// execSQL runs each statement on db.
func execSQL(t *testing.T, db *sql.DB, stmts ...string) {
	t.Helper()
	for _, q := range stmts {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

func count(t *testing.T, db *sql.DB, q string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRow(q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

func lines(s string) []string {
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}
