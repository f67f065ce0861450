package cli_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/databricks/databricks-sdk-go"

	"github.com/lakesession/lakesession/cmd/lakesession/cli"
	"github.com/lakesession/lakesession/lakebasecred/lakebasetest"
)

// run runs the command in this process, with env as its whole environment.
func run(t *testing.T, env map[string]string, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	code = cli.Run(context.Background(), args, cli.Env{
		Stdin:   strings.NewReader(stdin),
		Stdout:  &out,
		Stderr:  &errb,
		Getenv:  func(k string) string { return env[k] },
		Environ: func() []string { return nil },
	})
	return out.String(), errb.String(), code
}

func TestUsage(t *testing.T) {
	db := filepath.Join(t.TempDir(), "s.db")
	for _, c := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{nil, nil, "lakesession: give a command: doctor, migrate, prune, psql, sessions, token"},
		{nil, []string{"bogus"}, `unknown command "bogus"`},
		{nil, []string{"sessions"}, "lakesession: sessions needs a command: delete, export, import, list, show"},
		{nil, []string{"migrate", "sideways"}, `lakesession: migrate has no command "sideways": use down, status, up`},
		{nil, []string{"migrate", "up", "--nope"}, "unknown flag: --nope"},
		{nil, []string{"sessions", "list"}, "no database to connect to: pass --database-url URL (or set DATABASE_URL), --sqlite PATH, or a Lakebase target"},
		{nil, []string{"sessions", "list", "--sqlite", db, "--database-url", "postgres://localhost/x"}, "--database-url and --sqlite choose different databases"},
		{map[string]string{"DATABASE_URL": "postgres://localhost/x", "LAKEBASE_ENDPOINT": "projects/p/branches/b/endpoints/e"}, []string{"sessions", "list"},
			"both DATABASE_URL and a Lakebase target (LAKEBASE_ENDPOINT) are set"},
		{nil, []string{"sessions", "list", "--database-url", "postgres://localhost/x", "--port", "6543"}, "--port is for a Lakebase target only: with --database-url or DATABASE_URL, put the host, port"},
		{nil, []string{"sessions", "list", "--sqlite", db, "--schema", "s"}, "--schema applies to PostgreSQL only"},
		{nil, []string{"sessions", "list", "--sqlite", db, "--sessions-table", "1bad"}, `--sessions-table "1bad" starts with a digit`},
		{nil, []string{"sessions", "list", "--sqlite", db, "--messages-table", "agent_sessions"}, "--sessions-table and --messages-table are both"},
		{nil, []string{"sessions", "list", "--instance", "i", "--sslmode", "disable"}, `--sslmode "disable": use require, verify-ca or verify-full`},
		{nil, []string{"sessions", "list", "--sqlite", db, "--limit", "1001"}, "--limit 1001: use 1 to 1000"},
		{nil, []string{"sessions", "show", "--sqlite", db, ""}, "invalid session id: it is empty"},
		{nil, []string{"sessions", "show", "--sqlite", db, "a", "b"}, `lakesession: sessions show takes one session id, not "b"`},
		{nil, []string{"sessions", "export", "--sqlite", db}, "needs session ids, or --all"},
		{nil, []string{"sessions", "export", "--sqlite", db, "a", "--since", "1d"}, "--since goes with --all"},
		{nil, []string{"sessions", "export", "--sqlite", db, "--all", "--since", "soon"}, `--since "soon": give an RFC 3339 time`},
		{nil, []string{"sessions", "import", "--sqlite", db, "--if-exists", "merge"}, `--if-exists "merge": use refuse or append`},
		{nil, []string{"sessions", "import", "--sqlite", db, "a", "b"}, "reads one file"},
		{nil, []string{"prune", "--sqlite", db, "--older-than", "soon"}, `--older-than "soon": not an age`},
		{nil, []string{"sessions", "list", "--sqlite", db, "--connect-wait", "-3s"}, "--connect-wait -3s: use 0 (try once) or a positive duration"},
		{nil, []string{"prune", "--sqlite", db, "--older-than", "6m"}, `--older-than "6m": "m" could mean minutes or months: write min for minutes (90min)`},
		{nil, []string{"migrate", "down", "--sqlite", db}, "pass --yes"},
		{nil, []string{"migrate", "up", "--sqlite", db, "--migrations-table", "x-y"}, `--migrations-table "x-y"`},
		{nil, []string{"token", "--sqlite", db}, "token needs a Lakebase target, not the SQLite file " + db + ": pass --instance NAME (LAKEBASE_INSTANCE_NAME)"},
		{nil, []string{"token"}, "token needs a Lakebase target: pass --instance NAME (LAKEBASE_INSTANCE_NAME), --endpoint projects/P/branches/B/endpoints/E (LAKEBASE_ENDPOINT), or --project P --branch B (LAKEBASE_PROJECT, LAKEBASE_BRANCH)"},
		{nil, []string{"psql", "--", "-c", "SELECT 1"}, "psql needs a Lakebase target: pass --instance NAME"},
		{nil, []string{"psql", "--sqlite", db}, "psql needs a Lakebase target"},
	} {
		stdout, stderr, code := run(t, c.env, "", c.args...)
		if code != cli.ExitUsage || !strings.Contains(stderr, c.want) || !strings.Contains(stderr, "--help' for usage") || stdout != "" {
			t.Errorf("lakesession %q: exit %d, stdout %q, stderr %q; want exit 2 and %q", c.args, code, stdout, stderr, c.want)
		}
	}
	// Nothing was created by the refused commands.
	if _, err := os.Stat(db); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the refused commands left %s: %v", db, err)
	}
	if _, _, code := run(t, nil, "", "doctor", "--sqlite", db); code != cli.ExitFailure {
		t.Errorf("doctor on the missing file: exit %d", code)
	}

	stdout, _, code := run(t, nil, "", "--help")
	if code != cli.ExitOK || !strings.Contains(stdout, "Exit codes: 0 ok, 1 failure (or a problem found by doctor), 2 usage.") {
		t.Errorf("--help: exit %d, %q", code, stdout)
	}
}

// A flag chooses the database over the environment's variables of another
// kind.
func TestFlagsOverEnvironment(t *testing.T) {
	db := filepath.Join(t.TempDir(), "s.db")
	env := map[string]string{"DATABASE_URL": "postgres://nobody@127.0.0.1:1/none", "LAKEBASE_INSTANCE_NAME": "i"}
	if _, stderr, code := run(t, env, "", "migrate", "up", "--sqlite", db); code != cli.ExitOK {
		t.Fatalf("migrate up --sqlite with DATABASE_URL set: exit %d: %s", code, stderr)
	}
	stdout, _, code := run(t, env, "", "migrate", "status", "--sqlite", db)
	if code != cli.ExitOK || !strings.Contains(stdout, "1 applied, 0 pending") {
		t.Fatalf("status: exit %d, %q", code, stdout)
	}
}

func TestImportExportInProcess(t *testing.T) {
	db := filepath.Join(t.TempDir(), "s.db")
	if _, stderr, code := run(t, nil, "", "migrate", "up", "--sqlite", db); code != cli.ExitOK {
		t.Fatal(stderr)
	}
	in := `{"session_id":"b","item":{"role":"user","content":"one"}}` + "\n" +
		`{"session_id":"a","item":{"role":"user","content":"x"}}` + "\n" +
		`{"session_id":"b","item":{"type":"function_call","name":"f","arguments":"{}","call_id":"c"}}` + "\n"
	// Lines of one session may be apart: they are one batch, in order.
	stdout, stderr, code := run(t, nil, in, "sessions", "import", "--sqlite", db)
	if code != cli.ExitOK || stdout != "imported 2 sessions, 3 items\n" {
		t.Fatalf("import: exit %d, %q, %q", code, stdout, stderr)
	}
	stdout, _, code = run(t, nil, "", "sessions", "export", "b", "a", "--sqlite", db)
	want := lines(in)
	want = []string{want[0], want[2], want[1]}
	if code != cli.ExitOK || !slices.Equal(lines(stdout), want) {
		t.Fatalf("export: exit %d\n%s\nwant\n%s", code, stdout, strings.Join(want, "\n"))
	}
	stdout, _, _ = run(t, nil, "", "sessions", "show", "b", "--sqlite", db)
	if stdout != "user: one\nfunction_call: f({})\n" {
		t.Errorf("show = %q", stdout)
	}
	stdout, _, _ = run(t, nil, "", "sessions", "list", "--json", "--sqlite", db)
	if !strings.Contains(stdout, `"session_id":"b"`) || !strings.Contains(stdout, `"items":2`) || !strings.Contains(stdout, `"next_cursor":""`) {
		t.Errorf("list --json = %s", stdout)
	}
}

// A bar is drawn where stderr is a terminal, and only there.
func TestProgressOnlyOnTerminal(t *testing.T) {
	db := filepath.Join(t.TempDir(), "s.db")
	if _, stderr, code := run(t, nil, "", "migrate", "up", "--sqlite", db); code != cli.ExitOK {
		t.Fatal(stderr)
	}
	in := `{"session_id":"a","item":{"n":1}}` + "\n" + `{"session_id":"b","item":{"n":2}}` + "\n"
	for _, terminal := range []bool{false, true} {
		if _, stderr, code := run(t, nil, in, "sessions", "import", "--sqlite", db, "--if-exists", "append"); code != cli.ExitOK {
			t.Fatal(stderr)
		}
		var out, errb bytes.Buffer
		code := cli.Run(context.Background(), []string{"sessions", "delete", "a", "b", "--sqlite", db}, cli.Env{
			Stdout:     &out,
			Stderr:     &errb,
			Getenv:     func(string) string { return "" },
			IsTerminal: func(w io.Writer) bool { return terminal && w == &errb },
		})
		if code != cli.ExitOK || !strings.HasPrefix(out.String(), "deleted 2 sessions, 2 items in ") {
			t.Fatalf("delete: exit %d, %q, %q", code, out.String(), errb.String())
		}
		if drawn := strings.Contains(errb.String(), "(0/2)"); drawn != terminal {
			t.Errorf("terminal %v: stderr %q", terminal, errb.String())
		}
	}
}

// token and psql, with the Databricks client of lakebasetest and psql
// replaced: no database or process needed.
func TestTokenAndPsqlInProcess(t *testing.T) {
	fake := lakebasetest.NewServer(t)
	fake.AddInstance(lakebasetest.Instance{Name: "inst", ReadWriteDNS: "inst.example.com"})
	env := map[string]string{"LAKEBASE_INSTANCE_NAME": "inst", "LAKEBASE_DATABASE": "agents"}
	newEnv := func(out, errb *bytes.Buffer) cli.Env {
		return cli.Env{
			Stdout: out,
			Stderr: errb,
			Getenv: func(k string) string { return env[k] },
			Environ: func() []string {
				return []string{"HOME=/home/u", "PGPASSWORD=old", "PGHOSTADDR=10.0.0.9", "PGSSLROOTCERT=/etc/ca.pem", "PGOPTIONS=-c statement_timeout=5s"}
			},
			Workspace: func(*databricks.Config) (*databricks.WorkspaceClient, error) { return fake.WorkspaceClient(), nil },
			LookPath:  func(string) (string, error) { return "/opt/pg/bin/psql", nil },
		}
	}

	var out, errb bytes.Buffer
	if code := cli.Run(context.Background(), []string{"token"}, newEnv(&out, &errb)); code != cli.ExitOK {
		t.Fatalf("token: exit %d: %s", code, errb.String())
	}
	mints := fake.Mints()
	if len(mints) != 1 || out.String() != mints[0].Token+"\n" || errb.Len() != 0 {
		t.Fatalf("token printed %q, %q; want the minted token and a newline only", out.String(), errb.String())
	}

	var gotPath string
	var gotArgv, gotEnv []string
	out.Reset()
	e := newEnv(&out, &errb)
	e.Exec = func(path string, argv, env []string) error {
		gotPath, gotArgv, gotEnv = path, argv, env
		return nil
	}
	// After --, everything is psql's, lakesession's flag names included.
	if code := cli.Run(context.Background(), []string{"psql", "--port", "6543", "--schema", "Agents", "--", "-X", "-c", "\\dt", "--port", "1", "--"}, e); code != cli.ExitOK {
		t.Fatalf("psql: exit %d: %s", code, errb.String())
	}
	tok := fake.Mints()[1].Token
	if gotPath != "/opt/pg/bin/psql" || !slices.Equal(gotArgv, []string{"psql", "-X", "-c", "\\dt", "--port", "1", "--"}) {
		t.Errorf("exec %q %q", gotPath, gotArgv)
	}
	want := []string{"HOME=/home/u", "PGSSLROOTCERT=/etc/ca.pem", "PGHOST=inst.example.com", "PGPORT=6543", "PGUSER=" + lakebasetest.DefaultUserName,
		"PGDATABASE=agents", "PGSSLMODE=require", "PGPASSWORD=" + tok, "PGAPPNAME=lakesession-psql", `PGOPTIONS=-c statement_timeout=5s -c search_path="Agents",public`}
	if !slices.Equal(gotEnv, want) {
		t.Errorf("psql's environment\n%q\nwant\n%q", gotEnv, want)
	}
	if out.Len() != 0 {
		t.Errorf("psql printed %q", out.String())
	}
}

func lines(s string) []string {
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// A Lakebase target that cannot work is a usage error (exit 2) that names
// the flags, found before the Databricks workspace is asked anything.
func TestBadLakebaseTargetIsUsage(t *testing.T) {
	for _, args := range [][]string{
		{"token", "--endpoint", "bogus"},
		{"token", "--project", "p"},
		{"token", "--branch", "b"},
		{"sessions", "list", "--instance", "a", "--endpoint", "projects/a/branches/b/endpoints/c"},
	} {
		var out, errb bytes.Buffer
		code := cli.Run(context.Background(), args, cli.Env{
			Stdout: &out,
			Stderr: &errb,
			Getenv: func(string) string { return "" },
			Workspace: func(*databricks.Config) (*databricks.WorkspaceClient, error) {
				t.Errorf("%q: the workspace was asked for a target that cannot work", args)
				return nil, errors.New("not reached")
			},
		})
		if code != cli.ExitUsage || !strings.Contains(errb.String(), "--") || strings.Contains(errb.String(), "Target.") {
			t.Errorf("%q: exit %d, %q; want exit 2 and a message that names the flags", args, code, errb.String())
		}
	}
	// From the environment, the message names the variables.
	var out, errb bytes.Buffer
	env := map[string]string{"LAKEBASE_ENDPOINT": "bogus"}
	code := cli.Run(context.Background(), []string{"token"}, cli.Env{
		Stdout: &out,
		Stderr: &errb,
		Getenv: func(k string) string { return env[k] },
		Workspace: func(*databricks.Config) (*databricks.WorkspaceClient, error) {
			t.Error("the workspace was asked for a target that cannot work")
			return nil, errors.New("not reached")
		},
	})
	if code != cli.ExitUsage || !strings.Contains(errb.String(), `LAKEBASE_ENDPOINT "bogus" is not an endpoint resource name`) {
		t.Errorf("LAKEBASE_ENDPOINT=bogus: exit %d, %q; want exit 2 and a message that names the variable", code, errb.String())
	}
	// doctor reports it as the target's problem, before authenticating.
	out.Reset()
	errb.Reset()
	code = cli.Run(context.Background(), []string{"doctor", "--project", "p"}, cli.Env{
		Stdout: &out,
		Stderr: &errb,
		Getenv: func(string) string { return "" },
		Workspace: func(*databricks.Config) (*databricks.WorkspaceClient, error) {
			t.Error("doctor asked the workspace about a target that cannot work")
			return nil, errors.New("not reached")
		},
	})
	if code != cli.ExitFailure || !strings.Contains(out.String(), "--project is set without --branch") || strings.Contains(out.String(), "Target.") {
		t.Errorf("doctor --project p: exit %d, %q, %q; want exit 1 and the target's problem with the flags named", code, out.String(), errb.String())
	}
}

// An interrupt while the Databricks SDK is still trying to reach the
// workspace ends the command at once.
func TestInterruptWhileAuthenticating(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	var out, errb bytes.Buffer
	start := time.Now()
	code := cli.Run(ctx, []string{"token", "--instance", "inst"}, cli.Env{
		Stdout: &out,
		Stderr: &errb,
		Getenv: func(string) string { return "" },
		Workspace: func(*databricks.Config) (*databricks.WorkspaceClient, error) {
			select { // an SDK retrying an unreachable host
			case <-release:
			case <-time.After(10 * time.Second): // so that a command that waits for it fails the test, not hangs
			}
			return nil, errors.New("unreachable")
		},
	})
	if took := time.Since(start); code != cli.ExitFailure || took > 5*time.Second || !strings.Contains(errb.String(), "context canceled") {
		t.Fatalf("exit %d after %s, %q; want exit 1 soon after the interrupt", code, took, errb.String())
	}
}

// --connect-wait bounds how long a command waits for a server that cannot
// be reached; 0 tries once.
func TestConnectWait(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now: connections are refused
	url := "postgres://u:secret@" + addr + "/db?sslmode=disable"
	for _, c := range []struct {
		wait     string
		min, max time.Duration
	}{
		{"0", 0, time.Second},
		{"1500ms", 1500 * time.Millisecond, 6 * time.Second},
	} {
		var out, errb bytes.Buffer
		start := time.Now()
		code := cli.Run(context.Background(), []string{"sessions", "list", "--database-url", url, "--connect-wait", c.wait}, cli.Env{
			Stdout: &out,
			Stderr: &errb,
			Getenv: func(string) string { return "" },
		})
		took := time.Since(start)
		if code != cli.ExitFailure || took < c.min || took > c.max || strings.Contains(errb.String(), "secret") {
			t.Errorf("--connect-wait %s: exit %d after %s, %q; want exit 1 after %s to %s", c.wait, code, took, errb.String(), c.min, c.max)
		}
	}
}
