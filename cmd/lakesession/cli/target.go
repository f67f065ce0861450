package cli

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/databricks/databricks-sdk-go"
	"github.com/spf13/pflag"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/lakesession/lakesession/bunstore"
	"github.com/lakesession/lakesession/bunstore/sqlitedb"
	"github.com/lakesession/lakesession/connector"
	"github.com/lakesession/lakesession/lakebasecred"
	"github.com/lakesession/lakesession/models"
)

// The environment variables lakesession reads (the examples read the same).
const (
	EnvDatabaseURL      = "DATABASE_URL"
	EnvLakebaseInstance = "LAKEBASE_INSTANCE_NAME"
	EnvLakebaseEndpoint = "LAKEBASE_ENDPOINT"
	EnvLakebaseProject  = "LAKEBASE_PROJECT"
	EnvLakebaseBranch   = "LAKEBASE_BRANCH"
	EnvLakebaseDatabase = "LAKEBASE_DATABASE"
)

// ApplicationName is the application_name of lakesession's connections.
const ApplicationName = "lakesession-cli"

// Kinds of database.
const (
	kindPostgres = "postgres"
	kindSQLite   = "sqlite"
	kindLakebase = "lakebase"
)

// connFlags are the global flags that say where to connect.
type connFlags struct {
	fs *pflag.FlagSet

	databaseURL string
	sqlite      string

	instance, endpoint, project, branch string
	database, user, profile             string
	port                                int
	sslMode, sslRootCert                string
	connectWait                         time.Duration

	schema, sessionsTable, messagesTable string
}

func (f *connFlags) register(fs *pflag.FlagSet) {
	f.fs = fs
	fs.StringVar(&f.databaseURL, "database-url", "", "PostgreSQL URL or DSN with a static password (default $"+EnvDatabaseURL+")")
	fs.StringVar(&f.sqlite, "sqlite", "", "SQLite file")
	fs.StringVar(&f.instance, "instance", "", "Lakebase provisioned instance, by name or hostname (default $"+EnvLakebaseInstance+")")
	fs.StringVar(&f.endpoint, "endpoint", "", "Lakebase autoscaling endpoint, projects/P/branches/B/endpoints/E (default $"+EnvLakebaseEndpoint+")")
	fs.StringVar(&f.project, "project", "", "Lakebase autoscaling project, with --branch (default $"+EnvLakebaseProject+")")
	fs.StringVar(&f.branch, "branch", "", "Lakebase autoscaling branch, with --project: its read-write endpoint (default $"+EnvLakebaseBranch+")")
	fs.StringVar(&f.database, "database", "", "Lakebase database (default $"+EnvLakebaseDatabase+", else "+lakebasecred.DefaultDatabase+")")
	fs.StringVar(&f.user, "user", "", "Lakebase role to log in as (default: the Databricks user or service principal)")
	fs.StringVar(&f.profile, "profile", "", "Databricks configuration profile for Lakebase (default $DATABRICKS_CONFIG_PROFILE)")
	fs.IntVar(&f.port, "port", connector.DefaultPort, "Lakebase port")
	fs.StringVar(&f.sslMode, "sslmode", connector.LakebaseSSLMode, "Lakebase sslmode: require, verify-ca or verify-full")
	fs.StringVar(&f.sslRootCert, "sslrootcert", "", "PEM file of the certificates that sign the Lakebase server's (default: the system roots)")
	fs.DurationVar(&f.connectWait, "connect-wait", DefaultConnectWait, "how long to wait for a PostgreSQL or Lakebase server that cannot be reached (waking up, restarting); 0: try once")
	fs.StringVar(&f.schema, "schema", "", "schema of the tables (PostgreSQL; default: the search path)")
	fs.StringVar(&f.sessionsTable, "sessions-table", models.SessionsTable, "sessions table")
	fs.StringVar(&f.messagesTable, "messages-table", models.MessagesTable, "messages table")
}

// DefaultConnectWait is how long a command waits, by default, for a server
// that cannot be reached: long enough for a Lakebase compute to wake up,
// short enough that a wrong host or port is reported soon.
const DefaultConnectWait = 10 * time.Second

// maxConnectWait is the connector's MaxConnectWait for --connect-wait.
func (f *connFlags) maxConnectWait() time.Duration {
	if f.connectWait <= 0 {
		return -1 // one attempt
	}
	return f.connectWait
}

// target is where to connect, resolved from the flags and the environment.
type target struct {
	kind        string
	databaseURL string
	sqlite      string
	lakebase    lakebasecred.Target
	database    string // Lakebase database; "" for the default
	fromEnv     bool   // the Lakebase target came from the LAKEBASE_* variables
}

func (t target) String() string {
	switch t.kind {
	case kindSQLite:
		return "SQLite file " + t.sqlite
	case kindPostgres:
		return "PostgreSQL from --database-url"
	}
	lt := t.lakebase
	switch {
	case lt.Instance != "":
		return fmt.Sprintf("Lakebase instance %q", lt.Instance)
	case lt.Endpoint != "":
		return fmt.Sprintf("Lakebase endpoint %q", lt.Endpoint)
	default:
		return fmt.Sprintf("Lakebase project %q branch %q", lt.Project, lt.Branch)
	}
}

func (f *connFlags) changed(names ...string) []string {
	var out []string
	for _, n := range names {
		if f.fs.Changed(n) {
			out = append(out, "--"+n)
		}
	}
	return out
}

// lakebaseChoices says how to choose a Lakebase target.
var lakebaseChoices = fmt.Sprintf("--instance NAME (%s), --endpoint projects/P/branches/B/endpoints/E (%s), or --project P --branch B (%s, %s)",
	EnvLakebaseInstance, EnvLakebaseEndpoint, EnvLakebaseProject, EnvLakebaseBranch)

// errNoTarget is resolve's error when nothing says where to connect.
var errNoTarget = usagef("no database to connect to: pass --database-url URL (or set %s), --sqlite PATH, or a Lakebase target: %s", EnvDatabaseURL, lakebaseChoices)

// resolve picks the database: flags first; without any, the environment.
// Two choices at once, or none, is a usage error that says what to set.
func (f *connFlags) resolve(getenv func(string) string) (target, error) {
	lakebaseTargetFlags := []string{"instance", "endpoint", "project", "branch"}
	var chosen []string
	if f.fs.Changed("database-url") {
		chosen = append(chosen, kindPostgres)
	}
	if f.fs.Changed("sqlite") {
		chosen = append(chosen, kindSQLite)
	}
	if len(f.changed(lakebaseTargetFlags...)) > 0 {
		chosen = append(chosen, kindLakebase)
	}
	var t target
	switch len(chosen) {
	case 0:
		url := getenv(EnvDatabaseURL)
		lt := lakebasecred.Target{
			Instance: getenv(EnvLakebaseInstance),
			Endpoint: getenv(EnvLakebaseEndpoint),
			Project:  getenv(EnvLakebaseProject),
			Branch:   getenv(EnvLakebaseBranch),
		}
		switch {
		case url != "" && lt != (lakebasecred.Target{}):
			return target{}, usagef("both %s and a Lakebase target (%s) are set in the environment: unset one, or choose on the command line with --database-url, --sqlite or --instance/--endpoint/--project", EnvDatabaseURL, strings.Join(setVars(getenv, EnvLakebaseInstance, EnvLakebaseEndpoint, EnvLakebaseProject, EnvLakebaseBranch), ", "))
		case url != "":
			t = target{kind: kindPostgres, databaseURL: url}
		case lt != (lakebasecred.Target{}):
			t = target{kind: kindLakebase, lakebase: lt, fromEnv: true}
		default:
			return target{}, errNoTarget
		}
	case 1:
		switch chosen[0] {
		case kindPostgres:
			if f.databaseURL == "" {
				return target{}, usagef("--database-url is empty: pass a PostgreSQL URL such as postgres://user:password@host:5432/db?sslmode=require")
			}
			t = target{kind: kindPostgres, databaseURL: f.databaseURL}
		case kindSQLite:
			if f.sqlite == "" {
				return target{}, usagef("--sqlite is empty: pass the path of an SQLite file")
			}
			t = target{kind: kindSQLite, sqlite: f.sqlite}
		default:
			// The target fields all come from the flags, so that a
			// variable left in the environment cannot conflict with them.
			t = target{kind: kindLakebase, lakebase: lakebasecred.Target{
				Instance: f.instance, Endpoint: f.endpoint, Project: f.project, Branch: f.branch,
			}}
		}
	default:
		var names []string
		names = append(names, f.changed("database-url", "sqlite")...)
		names = append(names, f.changed(lakebaseTargetFlags...)...)
		return target{}, usagef("%s choose different databases: pass only one of --database-url, --sqlite or a Lakebase target", strings.Join(names, " and "))
	}

	if f.connectWait < 0 {
		return target{}, usagef("--connect-wait %s: use 0 (try once) or a positive duration such as 30s", f.connectWait)
	}
	lakebaseOnly := f.changed("database", "user", "profile", "port", "sslmode", "sslrootcert")
	isAre := "is"
	if len(lakebaseOnly) > 1 {
		isAre = "are"
	}
	switch t.kind {
	case kindLakebase:
		t.database = f.database
		if !f.fs.Changed("database") {
			t.database = getenv(EnvLakebaseDatabase)
		}
	case kindPostgres:
		if len(lakebaseOnly) > 0 {
			return target{}, usagef("%s %s for a Lakebase target only: with --database-url or %s, put the host, port, user, database and sslmode in the URL", strings.Join(lakebaseOnly, ", "), isAre, EnvDatabaseURL)
		}
	case kindSQLite:
		if len(lakebaseOnly) > 0 {
			return target{}, usagef("%s %s for a Lakebase target only, not for --sqlite", strings.Join(lakebaseOnly, ", "), isAre)
		}
		if f.schema != "" {
			return target{}, usagef("--schema applies to PostgreSQL only: an SQLite file has no schemas; leave it out")
		}
	}
	if t.kind != kindSQLite {
		if f.port < 1 || f.port > 65535 {
			return target{}, usagef("--port %d: use 1 to 65535", f.port)
		}
		switch f.sslMode {
		case "require", "verify-ca", "verify-full":
		default:
			return target{}, usagef("--sslmode %q: use require, verify-ca or verify-full (a token is the password, so TLS is required)", f.sslMode)
		}
	}
	// The store checks the names; its messages speak of its options.
	if _, err := bunstore.New(bun.NewDB(nil, pgdialect.New()), f.storeOptions()...); err != nil {
		msg := strings.TrimPrefix(strings.TrimPrefix(err.Error(), bunstore.ErrInvalidConfig.Error()), ": ")
		msg = strings.NewReplacer(
			"WithTables: sessions table name", "--sessions-table",
			"WithTables: messages table name", "--messages-table",
			"WithSchema: schema name", "--schema",
			"WithTables: the sessions and messages tables are both named", "--sessions-table and --messages-table are both",
			"; give them different names", ": give them different names",
		).Replace(msg)
		return target{}, usagef("%s", msg)
	}
	return t, nil
}

func setVars(getenv func(string) string, names ...string) []string {
	var out []string
	for _, n := range names {
		if getenv(n) != "" {
			out = append(out, n)
		}
	}
	return out
}

func (f *connFlags) storeOptions() []bunstore.Option {
	// The store's retries of what did not happen (a connection that could
	// not be made, among others) share the budget of --connect-wait, so
	// that an unreachable server is reported after about that long.
	opts := []bunstore.Option{bunstore.WithTables(f.sessionsTable, f.messagesTable), bunstore.WithMaxRetryWait(max(f.connectWait, 0))}
	if f.schema != "" {
		opts = append(opts, bunstore.WithSchema(f.schema))
	}
	return opts
}

// customTables reports whether the tables are not the default ones.
func (f *connFlags) customTables() bool {
	return f.sessionsTable != models.SessionsTable || f.messagesTable != models.MessagesTable
}

// conn is an open database.
type conn struct {
	target target
	db     *bun.DB
	// src is the Lakebase token source; nil for other kinds.
	src *lakebasecred.Source
	// connector is nil for SQLite.
	connector *connector.Connector
}

func (c *conn) Close() error {
	var errs []error
	if c.db != nil {
		errs = append(errs, c.db.Close())
	}
	if c.src != nil {
		errs = append(errs, c.src.Close())
	}
	return errors.Join(errs...)
}

// describe says where the connection goes, without any secret.
func (c *conn) describe() string {
	if c.connector == nil {
		return c.target.String()
	}
	s := strings.TrimSuffix(strings.TrimPrefix(c.connector.String(), "connector.Connector("), ")")
	return c.target.String() + " (" + s + ")"
}

// openOptions say how a command wants the database.
type openOptions struct {
	// createSQLite lets a missing SQLite file be created (migrate up).
	createSQLite bool
}

// open resolves the target and opens it. It does not run a query.
func (a *app) open(ctx context.Context, o openOptions) (*conn, error) {
	t, err := a.conn.resolve(a.env.Getenv)
	if err != nil {
		return nil, err
	}
	return a.openTarget(ctx, t, o)
}

func (a *app) openTarget(ctx context.Context, t target, o openOptions) (*conn, error) {
	switch t.kind {
	case kindSQLite:
		if t.sqlite != sqlitedb.Memory && !o.createSQLite {
			if _, err := os.Stat(t.sqlite); errors.Is(err, os.ErrNotExist) {
				return nil, &usageError{msg: fmt.Sprintf("SQLite file %s does not exist: check --sqlite, or create it with `lakesession migrate up --sqlite %s`", t.sqlite, t.sqlite)}
			}
		}
		db, err := sqlitedb.Open(t.sqlite)
		if err != nil {
			return nil, err
		}
		return &conn{target: t, db: db}, nil
	case kindPostgres:
		c, err := connector.New(connector.Config{DSN: t.databaseURL, Schema: a.conn.schema, ApplicationName: ApplicationName, MaxConnectWait: a.conn.maxConnectWait()})
		if err != nil {
			return nil, settingsError(fmt.Errorf("--database-url / %s: %w", EnvDatabaseURL, err))
		}
		return &conn{target: t, db: openPostgresDB(c), connector: c}, nil
	}
	src, err := a.lakebaseSource(ctx, t)
	if err != nil {
		return nil, err
	}
	c, err := a.lakebaseConnector(src)
	if err != nil {
		src.Close()
		return nil, err
	}
	return &conn{target: t, db: openPostgresDB(c), src: src, connector: c}, nil
}

// openPostgresDB opens a small pool: a command needs a few connections at
// most (doctor holds three at once).
func openPostgresDB(c *connector.Connector) *bun.DB {
	db := connector.OpenDB(c)
	db.SetMaxOpenConns(4)
	return bun.NewDB(db, pgdialect.New())
}

// workspace returns the Databricks client of the SDK's own authentication.
// It returns when ctx ends (an interrupt) even if the SDK is still trying
// to reach the workspace, which it does with retries of its own.
func (a *app) workspace(ctx context.Context) (*databricks.WorkspaceClient, error) {
	const hint = "set DATABRICKS_HOST and DATABRICKS_TOKEN, or another DATABRICKS_* method, or pass --profile with a profile of ~/.databrickscfg"
	type result struct {
		w   *databricks.WorkspaceClient
		err error
	}
	done := make(chan result, 1)
	go func() {
		w, err := a.env.Workspace(&databricks.Config{Profile: a.conn.profile})
		if err == nil {
			// The SDK finds its credentials at the first request; find
			// them now, so that missing ones are reported as such.
			var req *http.Request
			req, err = http.NewRequestWithContext(ctx, http.MethodGet, w.Config.Host, nil)
			if err == nil {
				err = w.Config.Authenticate(req)
			}
		}
		done <- result{w, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return nil, fmt.Errorf("authenticate to Databricks: %w (%s)", r.err, hint)
		}
		return r.w, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("authenticate to Databricks: %w", context.Cause(ctx))
	}
}

// renamed is an error whose message names the flags of the fields err
// names (see targetFlags).
type renamed struct {
	msg string
	err error
}

func (r renamed) Error() string { return r.msg }
func (r renamed) Unwrap() error { return r.err }

// targetFlags and targetVars name the flags, or the environment
// variables, of a Lakebase target in lakebasecred's messages, which name
// the fields of lakebasecred.Target.
var (
	targetFlags = strings.NewReplacer(
		"Target.Instance", "--instance",
		"Target.Endpoint", "--endpoint",
		"Target.Project", "--project",
		"Target.Branch", "--branch",
	)
	targetVars = strings.NewReplacer(
		"Target.Instance", EnvLakebaseInstance,
		"Target.Endpoint", EnvLakebaseEndpoint,
		"Target.Project", EnvLakebaseProject,
		"Target.Branch", EnvLakebaseBranch,
	)
)

// configProblems returns the problems of the *lakebasecred.ConfigError in
// err, with the target's settings named as the user gave them (see names),
// or err's text when it holds none.
func (t target) configProblems(err error) string {
	var ce *lakebasecred.ConfigError
	if !errors.As(err, &ce) {
		return t.names().Replace(err.Error())
	}
	return t.names().Replace(strings.Join(ce.Problems, "; "))
}

// names returns what names the Lakebase target's settings: the flags, or
// the environment variables it came from.
func (t target) names() *strings.Replacer {
	if t.fromEnv {
		return targetVars
	}
	return targetFlags
}

func (a *app) lakebaseOptions(t target) []lakebasecred.Option {
	var opts []lakebasecred.Option
	if t.database != "" {
		opts = append(opts, lakebasecred.WithDatabase(t.database))
	}
	if a.conn.user != "" {
		opts = append(opts, lakebasecred.WithUser(a.conn.user))
	}
	return opts
}

func (a *app) lakebaseSource(ctx context.Context, t target) (*lakebasecred.Source, error) {
	// A target that cannot work is a usage error, found before the
	// Databricks workspace is asked anything.
	if err := t.lakebase.Validate(); err != nil {
		return nil, &usageError{msg: t.configProblems(err)}
	}
	w, err := a.workspace(ctx)
	if err != nil {
		return nil, err
	}
	src, err := lakebasecred.New(ctx, w, t.lakebase, a.lakebaseOptions(t)...)
	if err != nil {
		return nil, renamed{msg: fmt.Sprintf("%s: %s", t, t.names().Replace(err.Error())), err: err}
	}
	return src, nil
}

func (a *app) lakebaseConnector(src *lakebasecred.Source) (*connector.Connector, error) {
	opts := []connector.Option{
		connector.WithPort(a.conn.port),
		connector.WithSSLMode(a.conn.sslMode),
		connector.WithApplicationName(ApplicationName),
		connector.WithMaxConnectWait(a.conn.maxConnectWait()),
	}
	if a.conn.sslRootCert != "" {
		opts = append(opts, connector.WithSSLRootCert(a.conn.sslRootCert))
	}
	if a.conn.schema != "" {
		opts = append(opts, connector.WithSchema(a.conn.schema))
	}
	c, err := connector.ForLakebase(src, opts...)
	if err != nil {
		return nil, settingsError(fmt.Errorf("connect to Lakebase: %w", err))
	}
	return c, nil
}

// settingsError makes err a usage error (exit code 2) when the connector
// refused the connection settings: nothing was tried.
func settingsError(err error) error {
	var ce *connector.ConfigError
	if errors.As(err, &ce) {
		return &usageError{msg: err.Error()}
	}
	return err
}

// openStore opens the database and a Store on it with the table flags.
func (a *app) openStore(ctx context.Context, o openOptions, storeOpts ...bunstore.Option) (*conn, *bunstore.Store, error) {
	c, err := a.open(ctx, o)
	if err != nil {
		return nil, nil, err
	}
	store, err := bunstore.New(c.db, append(a.conn.storeOptions(), storeOpts...)...)
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	return c, store, nil
}
