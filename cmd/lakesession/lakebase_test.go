package main_test

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/lakesession/lakesession/lakebasecred/lakebasetest"
)

const instanceName = "cli-instance"

// lakebase is a Lakebase target for the binary: the lakebasetest control
// plane, reached through the Databricks SDK's own environment variables,
// with an instance whose host is the test PostgreSQL, and whose every
// minted token becomes a real role's password there (over TLS).
type lakebase struct {
	fake     *lakebasetest.Server
	role     string
	database string
	port     int
	// env chooses the target and authenticates the SDK, as a user would.
	env []string
	// flags are what differs from a real Lakebase: the port and the local
	// server's certificate.
	flags []string
}

func setupLakebase(t *testing.T) *lakebase {
	t.Helper()
	admin := openDB(t, adminDSN(t))
	u, err := url.Parse(adminDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatalf("LAKESESSION_TEST_DATABASE_URL has no port: %v", err)
	}
	role := "agent-" + randomHex(t) + "@example.com"
	if _, err := admin.Exec("CREATE ROLE " + pgx.Identifier{role}.Sanitize() + " LOGIN"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec("DROP ROLE IF EXISTS " + pgx.Identifier{role}.Sanitize()); err != nil {
			t.Errorf("drop role: %v", err)
		}
	})
	name, _ := newDatabase(t)
	if _, err := admin.Exec("ALTER DATABASE " + name + " OWNER TO " + pgx.Identifier{role}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	fake := newFake(t, role)
	fake.OnMint(func(m lakebasetest.Mint) error {
		_, err := admin.ExecContext(context.Background(), m.AlterRoleSQL())
		return err
	})
	return &lakebase{
		fake:     fake,
		role:     role,
		database: name,
		port:     port,
		env: []string{
			// The SDK accepts an http:// host as it is: PAT authentication
			// needs only the host and the token.
			"DATABRICKS_HOST=" + fake.URL(),
			"DATABRICKS_TOKEN=" + lakebasetest.PAT,
			"LAKEBASE_INSTANCE_NAME=" + instanceName,
			"LAKEBASE_DATABASE=" + name,
		},
		flags: []string{"--port", strconv.Itoa(port), "--sslmode", "verify-full", "--sslrootcert", rootCert(t)},
	}
}

// newFake starts a lakebasetest control plane for role with the instance
// instanceName on 127.0.0.1. Every token it mints, and its Databricks
// token, are secrets no output of the binary may contain (see TestMain).
func newFake(t *testing.T, role string) *lakebasetest.Server {
	t.Helper()
	fake := lakebasetest.NewServer(t)
	fake.SetUserName(role)
	fake.AddInstance(lakebasetest.Instance{Name: instanceName, ReadWriteDNS: "127.0.0.1"})
	secrets(func() []string {
		out := []string{lakebasetest.PAT}
		for _, m := range fake.Mints() {
			out = append(out, m.Token)
		}
		return out
	})
	return fake
}

func (lb *lakebase) args(args ...string) []string {
	return append(args, lb.flags...)
}

func TestLakebaseToken(t *testing.T) {
	t.Parallel()
	lb := setupLakebase(t)
	r := mustRun(t, lb.env, "", lb.args("token")...)
	tok := strings.TrimSuffix(r.stdout, "\n")
	if tok == "" || strings.Contains(tok, "\n") || r.stderr != "" {
		t.Fatalf("token printed more than one token: %v", r)
	}
	if m, ok := lb.fake.Lookup(tok); !ok || m.User != lb.role {
		t.Fatalf("the printed token is not one the control plane minted for %s", lb.role)
	}
	// The printed token logs in, over TLS, as the role.
	cfg, err := pgx.ParseConfig("host=127.0.0.1 sslmode=verify-full sslrootcert=" + rootCert(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Port = uint16(lb.port)
	cfg.User, cfg.Password, cfg.Database = lb.role, tok, lb.database
	ctx := context.Background()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("log in with the printed token: %v", err)
	}
	defer conn.Close(ctx)
	var user string
	var tls bool
	if err := conn.QueryRow(ctx, "SELECT current_user, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&user, &tls); err != nil {
		t.Fatal(err)
	}
	if user != lb.role || !tls {
		t.Fatalf("logged in as %q, TLS %v; want %q over TLS", user, tls, lb.role)
	}

	wantExit(t, lakesession(t, []string{"DATABASE_URL=postgres://x@localhost/db"}, "", "token"), 2, "token needs a Lakebase target")
	// Without authentication the SDK's error says what to set.
	r = lakesession(t, []string{"LAKEBASE_INSTANCE_NAME=" + instanceName}, "", "token")
	wantExit(t, r, 1, "authenticate to Databricks", "DATABRICKS_HOST")
	if r.stdout != "" {
		t.Errorf("a failed token printed on stdout: %v", r)
	}
}

func TestLakebaseCommands(t *testing.T) {
	t.Parallel()
	lb := setupLakebase(t)
	wantExit(t, mustRun(t, lb.env, "", lb.args("migrate", "up")...), 0, "applied "+migrationName)
	admin := openDB(t, withParams(t, adminDSN(t), map[string]string{"dbname": lb.database}))
	var owner string
	if err := admin.QueryRow("SELECT tableowner FROM pg_tables WHERE tablename = 'agent_messages'").Scan(&owner); err != nil {
		t.Fatal(err)
	}
	if owner != lb.role {
		t.Fatalf("agent_messages is owned by %q, want the Lakebase role %q", owner, lb.role)
	}
	line := `{"session_id":"lb-1","item":{"role":"user","content":"Hello I live in SF!"}}` + "\n"
	wantExit(t, mustRun(t, lb.env, line, lb.args("sessions", "import")...), 0, "imported 1 session, 1 item")
	wantExit(t, mustRun(t, lb.env, "", lb.args("sessions", "list")...), 0, "lb-1 ")
	if r := mustRun(t, lb.env, "", lb.args("sessions", "export", "lb-1")...); r.stdout != line {
		t.Errorf("export = %q, want %q", r.stdout, line)
	}

	r := mustRun(t, lb.env, "", lb.args("doctor")...)
	wantExit(t, r, 0,
		"ok       Databricks authentication: "+lb.role+" on "+lb.fake.URL()+" (auth type pat)",
		`ok       Lakebase target: Lakebase instance "`+instanceName+`", AVAILABLE: host 127.0.0.1, user `+lb.role+", database "+lb.database,
		"ok       token mint: minted a token for "+lb.role,
		"ok       TLS login: logged in as "+lb.role+" to database "+lb.database+" over TLS",
		"ok       tables: public.agent_sessions and public.agent_messages exist",
		"ok       privileges: "+lb.role+" may read and write both tables",
		"ok       transaction pooler: none seen",
		"all 10 checks ok")

	// An autoscaling endpoint with a pooler: lakesession uses its own host.
	const endpoint = "projects/agents/branches/main/endpoints/ep-1"
	lb.fake.AddEndpoint(lakebasetest.Endpoint{Name: endpoint, Host: "127.0.0.1", PooledHost: "ep-1-pooler.example.com"})
	r = mustRun(t, lb.env, "", lb.args("doctor", "--endpoint", endpoint)...)
	wantExit(t, r, 0, `ok       Lakebase target: Lakebase endpoint "`+endpoint+`", ACTIVE: host 127.0.0.1`,
		"ok       transaction pooler: 127.0.0.1 is the endpoint's own host, not its pooler ep-1-pooler.example.com")
}

func TestLakebasePsql(t *testing.T) {
	t.Parallel()
	lb := setupLakebase(t)
	bin, record := t.TempDir(), t.TempDir()
	// A stand-in psql that records its environment, arguments and process
	// id, and exits 3.
	script := "#!/bin/sh\n" +
		"env > \"$LAKESESSION_TEST_RECORD/env\"\n" +
		"for a in \"$@\"; do printf '%s\\n' \"$a\"; done > \"$LAKESESSION_TEST_RECORD/args\"\n" +
		"echo $$ > \"$LAKESESSION_TEST_RECORD/pid\"\n" +
		"exit 3\n"
	if err := os.WriteFile(filepath.Join(bin, "psql"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	env := append(lb.env,
		"PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"),
		"LAKESESSION_TEST_RECORD="+record,
		"PGHOST=elsewhere.example.com", // replaced
		"PGSERVICE=prod",               // removed: a service file beats the environment
	)
	r := lakesession(t, env, "", "psql", "--port", strconv.Itoa(lb.port), "--", "-c", "SELECT count(*) FROM agent_sessions", "--no-psqlrc")
	if r.code != 3 {
		t.Fatalf("lakesession psql exited %d, want the stand-in's 3: %v", r.code, r)
	}
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(record, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	// psql replaced the lakesession process: same process id.
	if pid := strings.TrimSpace(read("pid")); pid != strconv.Itoa(r.pid) {
		t.Errorf("psql ran as process %s, lakesession as %d: psql was not exec'd in its place", pid, r.pid)
	}
	args := lines(read("args"))
	if want := []string{"-c", "SELECT count(*) FROM agent_sessions", "--no-psqlrc"}; !slices.Equal(args, want) {
		t.Errorf("psql's arguments = %q, want %q", args, want)
	}
	mints := lb.fake.Mints()
	if len(mints) != 1 {
		t.Fatalf("%d tokens minted, want 1", len(mints))
	}
	tok := mints[0].Token
	for _, a := range args {
		if strings.Contains(a, tok) {
			t.Fatalf("the token is on psql's command line")
		}
	}
	vars := map[string]string{}
	for _, kv := range lines(read("env")) {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	for k, want := range map[string]string{
		"PGPASSWORD": tok,
		"PGHOST":     "127.0.0.1",
		"PGPORT":     strconv.Itoa(lb.port),
		"PGUSER":     lb.role,
		"PGDATABASE": lb.database,
		"PGSSLMODE":  "require",
		"PGAPPNAME":  "lakesession-psql",
	} {
		if vars[k] != want {
			t.Errorf("psql's %s = %q, want %q", k, vars[k], want)
		}
	}
	if _, ok := vars["PGSERVICE"]; ok {
		t.Error("PGSERVICE was passed on to psql")
	}

	// Without psql on PATH, the error says how to install it.
	env = append(lb.env, "PATH="+t.TempDir())
	wantExit(t, lakesession(t, env, "", "psql"), 1, "psql is not on PATH: install the PostgreSQL client")
	wantExit(t, lakesession(t, lb.env, "", "psql", "-c", "SELECT 1"), 2, "put psql's own options after --")
}

func TestLakebaseDoctorBroken(t *testing.T) {
	t.Parallel()
	lb := setupLakebase(t)

	t.Run("wrong password", func(t *testing.T) {
		// A control plane whose tokens never become the role's password.
		other := newFake(t, lb.role)
		env := append(slices.Clone(lb.env), "DATABRICKS_HOST="+other.URL())
		r := lakesession(t, env, "", lb.args("doctor")...)
		wantExit(t, r, 1, "ok       token mint", "problem  TLS login:", "password authentication failed",
			"fix: the database rejected the token: the role must exist", "skipped  the other checks")
	})

	t.Run("bad credentials", func(t *testing.T) {
		const wrong = "dapi-wrong-0123456789"
		secrets(func() []string { return []string{wrong} })
		env := append(slices.Clone(lb.env), "DATABRICKS_TOKEN="+wrong)
		r := lakesession(t, env, "", lb.args("doctor")...)
		wantExit(t, r, 1, "problem  Databricks authentication:", "fix: check DATABRICKS_HOST and the credentials")
	})

	t.Run("stopped instance", func(t *testing.T) {
		lb.fake.AddInstance(lakebasetest.Instance{Name: "stopped", ReadWriteDNS: "127.0.0.1", State: lakebasetest.StateStopped})
		r := lakesession(t, lb.env, "", lb.args("doctor", "--instance", "stopped")...)
		wantExit(t, r, 1, "ok       Databricks authentication", `problem  Lakebase target: Lakebase instance "stopped": database instance "stopped" is stopped: start it`)
	})

	t.Run("missing tables", func(t *testing.T) {
		r := lakesession(t, lb.env, "", lb.args("doctor")...)
		wantExit(t, r, 1, "ok       TLS login", "problem  tables: agent_sessions and agent_messages do not exist",
			"ok       privileges: "+lb.role+" may create the tables in schema public")
	})
}
