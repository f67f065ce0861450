package cli

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/databricks/databricks-sdk-go"
	"github.com/databricks/databricks-sdk-go/service/database"
	"github.com/databricks/databricks-sdk-go/service/iam"
	"github.com/databricks/databricks-sdk-go/service/postgres"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/spf13/cobra"

	"github.com/lakesession/lakesession/bunstore/sqlitedb"
	"github.com/lakesession/lakesession/lakebasecred"
	"github.com/lakesession/lakesession/models"
)

// checkTimeout bounds each of doctor's checks.
const checkTimeout = 30 * time.Second

func (a *app) doctorCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "doctor",
		Short: "Check the setup, and say what to fix",
		Long: `doctor checks, one by one, what lakesession needs, and prints each check as
ok or problem, with what to do about a problem:

  on Lakebase: the Databricks authentication, the target's resolution and
  state, a token mint;
  on PostgreSQL and Lakebase: a login over TLS, the server's version and
  time zone, the tables, their shape (that of the Python SQLAlchemySession)
  and indexes, the privileges lakesession needs (CREATE on the schema while
  the tables are missing; reading and writing them once they exist), and
  whether the host is a transaction pooler;
  on SQLite: the file, its version and journal mode, the tables, their
  shape and indexes, and write access.

The exit code is 1 when a check finds a problem.`,
		Args: noArgs,
		RunE: a.run(func(cmd *cobra.Command, _ []string) error {
			t, err := a.conn.resolve(a.env.Getenv)
			if err != nil {
				return err
			}
			d := &doctor{a: a, out: a.env.Stdout}
			d.run(cmd.Context(), t)
			if d.problems > 0 {
				return &reportedError{msg: fmt.Sprintf("doctor found %s (of %s)", plural(int64(d.problems), "problem"), plural(int64(d.checks), "check"))}
			}
			fmt.Fprintf(d.out, "all %d checks ok\n", d.checks)
			return nil
		}),
	}
}

type doctor struct {
	a        *app
	out      io.Writer
	checks   int
	problems int
}

func (d *doctor) ok(name, format string, args ...any) {
	d.checks++
	fmt.Fprintf(d.out, "ok       %s: %s\n", name, fmt.Sprintf(format, args...))
}

func (d *doctor) problem(name, detail, fix string) {
	d.checks++
	d.problems++
	fmt.Fprintf(d.out, "problem  %s: %s\n", name, oneLineText(detail))
	if fix != "" {
		fmt.Fprintf(d.out, "         fix: %s\n", fix)
	}
}

func (d *doctor) skip(name, why string) {
	fmt.Fprintf(d.out, "skipped  %s: %s\n", name, why)
}

func oneLineText(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func (d *doctor) run(ctx context.Context, t target) {
	switch t.kind {
	case kindSQLite:
		d.sqlite(ctx, t)
	case kindPostgres:
		c, err := d.a.openTarget(ctx, t, openOptions{})
		if err != nil {
			d.problem("connection settings", err.Error(), "write --database-url / DATABASE_URL as postgres://user:password@host:5432/db?sslmode=verify-full")
			return
		}
		defer c.Close()
		d.postgres(ctx, c, dsnHost(t.databaseURL))
	default:
		c := d.lakebase(ctx, t)
		if c == nil {
			return
		}
		defer c.Close()
		d.postgres(ctx, c, c.src.Host())
	}
}

// dsnHost returns the host a DSN names, or "" (never the DSN itself).
func dsnHost(dsn string) string {
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return ""
	}
	return cfg.Host
}

func (d *doctor) lakebase(ctx context.Context, t target) *conn {
	const (
		authName   = "Databricks authentication"
		targetName = "Lakebase target"
		targetFix  = "set the target as the problem says (--instance, --endpoint, or --project and --branch, or their LAKEBASE_* variables)"
	)
	if err := t.lakebase.Validate(); err != nil {
		d.problem(targetName, t.String()+": "+t.configProblems(err), targetFix)
		return nil
	}
	actx, cancel := context.WithTimeout(ctx, checkTimeout)
	w, err := d.a.workspace(actx)
	cancel()
	if err != nil {
		d.problem(authName, err.Error(), "set DATABRICKS_HOST and DATABRICKS_TOKEN (or DATABRICKS_CLIENT_ID and DATABRICKS_CLIENT_SECRET for a service principal), or log in with `databricks auth login` and pass --profile")
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, checkTimeout)
	me, err := w.CurrentUser.Me(cctx, iam.MeRequest{})
	cancel()
	if err != nil {
		d.problem(authName, fmt.Sprintf("the workspace %s did not accept the credentials: %v", w.Config.Host, err), "check DATABRICKS_HOST and the credentials (an expired token or a wrong profile), e.g. with `databricks current-user me`")
		return nil
	}
	d.ok(authName, "%s on %s (auth type %s)", me.UserName, w.Config.Host, w.Config.AuthType)

	cctx, cancel = context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	src, err := lakebasecred.New(cctx, w, t.lakebase, d.a.lakebaseOptions(t)...)
	if err != nil {
		var ce *lakebasecred.ConfigError
		if errors.As(err, &ce) {
			d.problem(targetName, t.String()+": "+t.configProblems(err), targetFix)
		} else {
			d.problem(targetName, t.String()+": "+err.Error(), "the workspace API failed: try again, or check the workspace's status")
		}
		return nil
	}
	d.ok(targetName, "%s%s: host %s, user %s, database %s", t, targetState(cctx, w, t.lakebase), src.Host(), src.User(), src.Database())

	const mintName = "token mint"
	tctx, tcancel := context.WithTimeout(ctx, checkTimeout)
	_, err = src.Token(tctx)
	tcancel()
	if err != nil {
		src.Close()
		d.problem(mintName, err.Error(), "the identity must be allowed to generate database credentials for the target (CAN_CONNECT_AND_CREATE on the instance or project)")
		return nil
	}
	d.ok(mintName, "minted a token for %s", src.User())

	c, err := d.a.lakebaseConnector(src)
	if err != nil {
		src.Close()
		d.problem("connection settings", err.Error(), "fix the flags the problem names (--port, --sslmode, --sslrootcert, --schema)")
		return nil
	}
	db := openPostgresDB(c)
	return &conn{target: t, db: db, src: src, connector: c}
}

// targetState reads the state of an instance or endpoint by name, when the
// target names one: ", AVAILABLE". It is informative only.
func targetState(ctx context.Context, w *databricks.WorkspaceClient, t lakebasecred.Target) string {
	switch {
	case t.Instance != "" && !strings.Contains(t.Instance, "."):
		inst, err := w.Database.GetDatabaseInstance(ctx, database.GetDatabaseInstanceRequest{Name: strings.TrimSpace(t.Instance)})
		if err == nil && inst.State != "" {
			return ", " + string(inst.State)
		}
	case t.Endpoint != "":
		ep, err := w.Postgres.GetEndpoint(ctx, postgres.GetEndpointRequest{Name: strings.TrimSpace(t.Endpoint)})
		if err == nil && ep.Status != nil && ep.Status.CurrentState != "" {
			return ", " + string(ep.Status.CurrentState)
		}
	}
	return ""
}

// loginFix says what to do about a failed login.
func loginFix(err error, kind string) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "28P01":
			if kind == kindLakebase {
				return "the database rejected the token: the role must exist on the Lakebase database for this Databricks identity (add it as a PostgreSQL role in the Lakebase UI), or pass --user with the role to log in as"
			}
			return "the password is wrong: fix the password in --database-url / DATABASE_URL"
		case "28000":
			return "the server refused this user, host or database, or a login without TLS: check the user and database, and the server's pg_hba.conf (hostssl lines need sslmode=require)"
		case "3D000":
			if kind == kindLakebase {
				return "the database does not exist: set --database or LAKEBASE_DATABASE (default databricks_postgres)"
			}
			return "the database does not exist: fix the database name in --database-url / DATABASE_URL"
		}
	}
	msg := err.Error()
	var nerr net.Error
	switch {
	case strings.Contains(msg, "server refused TLS"):
		return "the server does not accept TLS: enable TLS on the server (a token must not travel in plain text)"
	case strings.Contains(msg, "x509:") || strings.Contains(msg, "certificate"):
		return "the server's certificate is not trusted: pass the certificate that signs it with --sslrootcert (or sslrootcert= in the URL), or use sslmode=require"
	case strings.Contains(msg, "connection refused"), strings.Contains(msg, "no such host"), errors.As(err, &nerr):
		return "no server answered: check the host and port, and that the database is running and reachable from here"
	}
	return "check the host, port, user, database and TLS settings"
}

func (d *doctor) postgres(ctx context.Context, c *conn, host string) {
	const loginName = "TLS login"
	cctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	sc, err := c.db.DB.Conn(cctx)
	if err != nil {
		d.problem(loginName, fmt.Sprintf("%s: %v", c.describe(), err), loginFix(err, c.target.kind))
		d.skip("the other checks", "they need a login")
		return
	}
	defer sc.Close()
	var (
		user, dbname, tlsVersion string
		tls                      bool
	)
	err = sc.QueryRowContext(cctx, `SELECT current_user, current_database(),
		COALESCE((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false),
		COALESCE((SELECT version FROM pg_stat_ssl WHERE pid = pg_backend_pid()), '')`).Scan(&user, &dbname, &tls, &tlsVersion)
	switch {
	case err != nil:
		d.problem(loginName, err.Error(), "the server answered but could not run a query: check its logs")
		return
	case !tls:
		d.problem(loginName, fmt.Sprintf("logged in as %s to database %s without TLS", user, dbname), "add sslmode=require (or verify-full with sslrootcert) to --database-url, and enable TLS on the server")
	default:
		d.ok(loginName, "logged in as %s to database %s over TLS (%s)", user, dbname, tlsVersion)
	}

	d.server(cctx, sc)
	tablesExist := d.tables(cctx, sc)
	if tablesExist {
		d.shape(cctx, sc)
		d.indexes(cctx, sc, pgIndexes, d.a.qualify(d.a.conn.sessionsTable), d.a.qualify(d.a.conn.messagesTable), "the catalog could not be read: check the role's privileges")
	} else {
		d.skip("table shape and indexes", "they need the tables")
	}
	d.privileges(cctx, sc, user, tablesExist)
	d.pooler(cctx, c, host)
}

func (d *doctor) server(ctx context.Context, sc *sql.Conn) {
	const name = "server"
	var (
		version, tz, tzSource string
		num                   int
	)
	err := sc.QueryRowContext(ctx, `SELECT current_setting('server_version'), current_setting('server_version_num')::int,
		current_setting('TimeZone'), (SELECT source FROM pg_settings WHERE name = 'TimeZone')`).Scan(&version, &num, &tz, &tzSource)
	switch {
	case err != nil:
		d.problem(name, err.Error(), "the server could not report its version and time zone: check its logs")
	case num < 120000:
		d.problem(name, fmt.Sprintf("PostgreSQL %s", version), "lakesession needs PostgreSQL 12 or later: upgrade the server")
	case tzSource == "client":
		d.problem(name, fmt.Sprintf("PostgreSQL %s; this connection set its own TimeZone %s (in its URL or PGTZ)", version, tz),
			"times are stored as wall-clock time in the writer's TimeZone: let every writer (Go, Python, psql) use the server's, so remove the time zone from the connection settings")
	default:
		d.ok(name, "PostgreSQL %s, TimeZone %s (from the %s); times are stored as wall-clock time in it", version, tz, tzSource)
	}
}

func (d *doctor) tables(ctx context.Context, sc *sql.Conn) bool {
	const name = "tables"
	s, m := d.a.conn.sessionsTable, d.a.conn.messagesTable
	var sSchema, mSchema sql.NullString
	err := sc.QueryRowContext(ctx, `SELECT (SELECT relnamespace::regnamespace::text FROM pg_class WHERE oid = to_regclass($1)),
		(SELECT relnamespace::regnamespace::text FROM pg_class WHERE oid = to_regclass($2))`,
		d.a.qualify(s), d.a.qualify(m)).Scan(&sSchema, &mSchema)
	if err != nil {
		d.problem(name, err.Error(), "the catalog could not be read: check the role's privileges")
		return false
	}
	var missing []string
	if !sSchema.Valid {
		missing = append(missing, s)
	}
	if !mSchema.Valid {
		missing = append(missing, m)
	}
	where := "the search path"
	if d.a.conn.schema != "" {
		where = "schema " + d.a.conn.schema
	}
	if len(missing) > 0 {
		verb := "does"
		if len(missing) > 1 {
			verb = "do"
		}
		d.problem(name, fmt.Sprintf("%s %s not exist in %s", joinList(missing), verb, where), d.createFix())
		return false
	}
	migrated := d.migrated(ctx, sc)
	d.ok(name, "%s.%s and %s.%s exist%s", sSchema.String, s, mSchema.String, m, migrated)
	return true
}

// createFix says how to create the tables.
func (d *doctor) createFix() string {
	if d.a.conn.customTables() {
		return "create them from your application with bunstore's CreateTables and WithTables (the embedded migrations make " + models.SessionsTable + " and " + models.MessagesTable + " only)"
	}
	return "run `lakesession migrate up` with the same connection flags (or let your application run the migrations or CreateTables)"
}

// migrated says whether the migrations' bookkeeping records the tables.
func (d *doctor) migrated(ctx context.Context, sc *sql.Conn) string {
	table := DefaultMigrationsTable
	if d.a.conn.schema != "" {
		table = `"` + d.a.conn.schema + `".` + table
	}
	var applied sql.NullInt64
	err := sc.QueryRowContext(ctx, `SELECT CASE WHEN to_regclass($1) IS NULL THEN NULL ELSE 0 END`, table).Scan(&applied)
	if err != nil || !applied.Valid {
		return " (not through lakesession's migrations)"
	}
	var n int
	if err := sc.QueryRowContext(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		return ""
	}
	return fmt.Sprintf(" (%s recorded in %s)", plural(int64(n), "migration"), DefaultMigrationsTable)
}

// column is what doctor checks of a column.
type column struct {
	typ     string
	notNull bool
	hasDef  bool
	// generated: an identity column (PostgreSQL), or the primary key
	// (SQLite, where an INTEGER PRIMARY KEY is the never-NULL rowid).
	generated bool
}

// pgColumns lists the columns of a table ($1, regclass text).
const pgColumns = `SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
		d.adbin IS NOT NULL, a.attidentity <> ''
	FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
	WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped`

// sqliteColumns lists the columns of a table (?).
const sqliteColumns = `SELECT name, type, "notnull", dflt_value IS NOT NULL, pk > 0 FROM pragma_table_info(?)`

// columns reads the columns of table with list, pgColumns or
// sqliteColumns; none when the table does not exist.
func columns(ctx context.Context, q queryer, list, table string) (map[string]column, error) {
	rows, err := q.QueryContext(ctx, list, table)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols := map[string]column{}
	for rows.Next() {
		var (
			name string
			c    column
		)
		if err := rows.Scan(&name, &c.typ, &c.notNull, &c.hasDef, &c.generated); err != nil {
			return nil, err
		}
		cols[name] = c
	}
	return cols, rows.Err()
}

// shapeProblems collects how tables differ from the Python
// SQLAlchemySession's.
type shapeProblems []string

// want notes a problem unless cols has col, of a type okType accepts
// (what names it), NOT NULL, and with a default when needDefault.
func (p *shapeProblems) want(table string, cols map[string]column, col, what string, okType func(string) bool, needDefault bool) {
	c, ok := cols[col]
	switch {
	case !ok:
		*p = append(*p, fmt.Sprintf("%s has no column %s", table, col))
	case !okType(c.typ):
		*p = append(*p, fmt.Sprintf("%s.%s is %s, not %s", table, col, c.typ, what))
	case !c.notNull && !c.generated:
		*p = append(*p, fmt.Sprintf("%s.%s may be NULL", table, col))
	case needDefault && !c.hasDef && !c.generated:
		*p = append(*p, fmt.Sprintf("%s.%s has no default", table, col))
	}
}

// report prints the shape check: ok, or the problems and what to do.
func (p shapeProblems) report(d *doctor, ok string) {
	if len(p) > 0 {
		d.problem("table shape", "not the shape of the Python SQLAlchemySession's tables: "+strings.Join(p, "; "),
			"recreate the tables as package migrations (or Python's SQLAlchemySession) creates them, and copy the rows over (lakesession sessions export --all, then import)")
		return
	}
	d.ok("table shape", "Python-compatible: %s", ok)
}

func (d *doctor) shape(ctx context.Context, sc *sql.Conn) {
	s, m := d.a.conn.sessionsTable, d.a.conn.messagesTable
	sc1, err := columns(ctx, sc, pgColumns, d.a.qualify(s))
	var mc map[string]column
	if err == nil {
		mc, err = columns(ctx, sc, pgColumns, d.a.qualify(m))
	}
	if err != nil {
		d.problem("table shape", err.Error(), "the catalog could not be read: check the role's privileges")
		return
	}
	var problems shapeProblems
	text := func(t string) bool { return t == "text" || strings.HasPrefix(t, "character varying") }
	ts := func(t string) bool {
		return t == "timestamp without time zone" || strings.HasPrefix(t, "timestamp(") && strings.HasSuffix(t, "without time zone")
	}
	problems.want(s, sc1, "session_id", "varchar", text, false)
	problems.want(s, sc1, "created_at", "timestamp without time zone", ts, true)
	problems.want(s, sc1, "updated_at", "timestamp without time zone", ts, true)
	problems.want(m, mc, "id", "integer or bigint", func(t string) bool { return t == "integer" || t == "bigint" }, true)
	problems.want(m, mc, "session_id", "varchar", text, false)
	problems.want(m, mc, "message_data", "text", text, false)
	problems.want(m, mc, "created_at", "timestamp without time zone", ts, true)
	var fk sql.NullString
	if err := sc.QueryRowContext(ctx, `SELECT max(confdeltype::text) FROM pg_constraint
		WHERE conrelid = to_regclass($1) AND confrelid = to_regclass($2) AND contype = 'f'`, d.a.qualify(m), d.a.qualify(s)).Scan(&fk); err != nil {
		problems = append(problems, "the foreign key could not be read: "+err.Error())
	} else if !fk.Valid {
		problems = append(problems, fmt.Sprintf("%s.session_id has no foreign key to %s", m, s))
	} else if fk.String != "c" {
		problems = append(problems, fmt.Sprintf("the foreign key of %s.session_id is not ON DELETE CASCADE", m))
	}
	idKind := "identity"
	if !mc["id"].generated {
		idKind = "serial"
	}
	problems.report(d, fmt.Sprintf("session_id varchar, created_at and updated_at timestamp without time zone, id %s %s, message_data text, foreign key ON DELETE CASCADE", mc["id"].typ, idKind))
}

// pgIndexes lists the valid indexes of a table ($1, regclass text) with
// their key columns, comma-separated.
const pgIndexes = `SELECT c.relname, (SELECT string_agg(a.attname, ',' ORDER BY k.n)
		FROM unnest(i.indkey) WITH ORDINALITY AS k(attnum, n)
		JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum)
	FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
	WHERE i.indrelid = to_regclass($1) AND i.indisvalid`

// sqliteIndexes lists the indexes of a table (?) with their key columns.
const sqliteIndexes = `SELECT il.name, (SELECT group_concat(name, ',') FROM (SELECT name FROM pragma_index_info(il.name) ORDER BY seqno))
	FROM pragma_index_list(?) il`

// queryer is a *sql.Conn or a *bun.DB.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// indexes checks that the tables have the indexes lakesession reads by:
// list is pgIndexes or sqliteIndexes, with sessions and messages the
// tables as list takes them; catalogFix says what to do when the list
// fails.
func (d *doctor) indexes(ctx context.Context, q queryer, list, sessions, messages, catalogFix string) {
	const name = "indexes"
	// find returns an index whose key columns start with prefix.
	find := func(table, prefix string) (string, bool, error) {
		rows, err := q.QueryContext(ctx, list, table)
		if err != nil {
			return "", false, err
		}
		defer rows.Close()
		for rows.Next() {
			var idx string
			var cols sql.NullString
			if err := rows.Scan(&idx, &cols); err != nil {
				return "", false, err
			}
			if cols.Valid && (cols.String == prefix || strings.HasPrefix(cols.String, prefix+",")) {
				return idx, true, nil
			}
		}
		return "", false, rows.Err()
	}
	s, m := d.a.conn.sessionsTable, d.a.conn.messagesTable
	order, okOrder, err := find(messages, "session_id,created_at,id")
	var updated, python string
	var okUpdated, okPython bool
	if err == nil {
		updated, okUpdated, err = find(sessions, "updated_at,session_id")
	}
	if err == nil {
		python, okPython, err = find(messages, "session_id,created_at")
	}
	if err != nil {
		d.problem(name, err.Error(), catalogFix)
		return
	}
	var missing []string
	if !okOrder {
		missing = append(missing, fmt.Sprintf("%s has no index on (session_id, created_at, id): reads of a session sort its items", m))
	}
	if !okUpdated {
		missing = append(missing, fmt.Sprintf("%s has no index on (updated_at, session_id): sessions list and prune scan the table", s))
	}
	if len(missing) > 0 {
		d.problem(name, strings.Join(missing, "; "), d.createFix()+": it adds the missing indexes and keeps the rest")
		return
	}
	extra := ""
	if okPython && python != order {
		extra = fmt.Sprintf("; Python's %s is there too", python)
	}
	d.ok(name, "%s (session_id, created_at, id) and %s (updated_at, session_id)%s", order, updated, extra)
}

func (d *doctor) privileges(ctx context.Context, sc *sql.Conn, user string, tablesExist bool) {
	const name = "privileges"
	fail := func(err error) {
		d.problem(name, err.Error(), "the catalog could not be read: check the role's privileges")
	}
	if !tablesExist {
		schema := d.a.conn.schema
		if schema == "" {
			if err := sc.QueryRowContext(ctx, "SELECT COALESCE(current_schema(), '')").Scan(&schema); err != nil {
				fail(err)
				return
			}
			if schema == "" {
				d.problem(name, "no schema of the search path exists to create the tables in", "pass --schema, or set the role's search_path to a schema it may create tables in")
				return
			}
		}
		var exists, create, dbCreate bool
		err := sc.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1),
			CASE WHEN EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1) THEN has_schema_privilege(quote_ident($1), 'CREATE') ELSE false END,
			has_database_privilege(current_database(), 'CREATE')`, schema).Scan(&exists, &create, &dbCreate)
		switch {
		case err != nil:
			fail(err)
		case exists && create:
			d.ok(name, "%s may create the tables in schema %s (CREATE on the schema)", user, schema)
		case exists:
			d.problem(name, fmt.Sprintf("%s may not create tables in schema %s", user, schema),
				fmt.Sprintf("GRANT CREATE ON SCHEMA %s TO %q (as its owner), or have the owner run the migrations", schema, user))
		case dbCreate:
			d.ok(name, "%s may create schema %s and the tables in it (CREATE on the database)", user, schema)
		default:
			d.problem(name, fmt.Sprintf("schema %s does not exist and %s may not create it", schema, user),
				fmt.Sprintf("create the schema and GRANT CREATE ON SCHEMA %s TO %q, or GRANT CREATE ON DATABASE to the role", schema, user))
		}
		return
	}
	var missing []string
	for _, t := range []string{d.a.conn.sessionsTable, d.a.conn.messagesTable} {
		for _, p := range []string{"SELECT", "INSERT", "UPDATE", "DELETE"} {
			var ok bool
			if err := sc.QueryRowContext(ctx, "SELECT has_table_privilege(to_regclass($1), $2)", d.a.qualify(t), p).Scan(&ok); err != nil {
				fail(err)
				return
			}
			if !ok {
				missing = append(missing, p+" on "+t)
			}
		}
	}
	// A SERIAL id (Python's) draws from a sequence the role must use; an
	// identity column needs no grant of its own.
	var seq sql.NullString
	var seqOK sql.NullBool
	err := sc.QueryRowContext(ctx, `SELECT s, CASE WHEN s IS NULL THEN NULL ELSE has_sequence_privilege(s, 'USAGE') END
		FROM (SELECT pg_get_serial_sequence($1, 'id') AS s) x
		WHERE NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass($1) AND attname = 'id' AND attidentity <> '')`,
		d.a.qualify(d.a.conn.messagesTable)).Scan(&seq, &seqOK)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		fail(err)
		return
	}
	if seq.Valid && seqOK.Valid && !seqOK.Bool {
		missing = append(missing, "USAGE on "+seq.String)
	}
	if len(missing) > 0 {
		d.problem(name, fmt.Sprintf("%s lacks %s", user, strings.Join(missing, ", ")),
			fmt.Sprintf("as the tables' owner: GRANT SELECT, INSERT, UPDATE, DELETE ON %s, %s TO %q (and GRANT USAGE on the id's sequence for a SERIAL id)", d.a.conn.sessionsTable, d.a.conn.messagesTable, user))
		return
	}
	d.ok(name, "%s may read and write both tables (no CREATE needed: the tables exist)", user)
}

// pooler checks whether the connection goes through a transaction pooler,
// which the per-connection prepared statements of pgx's default query
// exec mode do not survive. On Lakebase the Source knows the endpoint's
// pooled host (lakebasecred.Source.PooledHost), and lakesession connects
// to the endpoint's own host; for a URL, the host's name and the backend
// probe tell.
func (d *doctor) pooler(ctx context.Context, c *conn, host string) {
	const name = "transaction pooler"
	if c.src != nil && c.src.PooledHost() != "" {
		if strings.EqualFold(host, c.src.PooledHost()) {
			d.problem(name, fmt.Sprintf("host %s is the endpoint's pooled host", host), "connect to the endpoint's host (lakesession resolves it), or use the pooler with connector.WithPooledHost, which does not prepare statements")
			return
		}
		d.ok(name, "%s is the endpoint's own host, not its pooler %s (an application may use the pooler with connector.WithPooledHost)", host, c.src.PooledHost())
		return
	}
	mode := "pgx prepares statements per connection (its default query exec mode)"
	unprepared := false
	if c.target.kind == kindPostgres {
		if cfg, err := pgx.ParseConfig(c.target.databaseURL); err == nil {
			switch cfg.DefaultQueryExecMode {
			case pgx.QueryExecModeExec, pgx.QueryExecModeSimpleProtocol:
				unprepared = true
				mode = "statements are not prepared (default_query_exec_mode " + cfg.DefaultQueryExecMode.String() + ")"
			}
		}
	}
	fix := "connect to the database's direct host instead of the pooler, or add default_query_exec_mode=exec to the URL so that no statement is prepared"
	if c.src != nil {
		fix = "connect to the endpoint's own host, which lakesession resolves"
	}
	var why string
	if poolerHostName(host) {
		why = fmt.Sprintf("host %s is named as a connection pooler", host)
	} else {
		switched, err := backendSwitches(ctx, c.db.DB)
		switch {
		case err != nil:
			d.problem(name, "the check could not run: "+err.Error(), "let the role open two connections at once")
			return
		case !switched:
			d.ok(name, "none seen: a connection kept its server session across transactions")
			return
		}
		why = "a connection moved to another server session between two transactions: the host is a transaction pooler"
	}
	if unprepared {
		d.ok(name, "%s, and %s: the store works through it", why, mode)
		return
	}
	d.problem(name, why+", and "+mode+", which a transaction pooler does not keep", fix)
}

// poolerHostName reports whether a host is named as a pooler: its first
// label says "pooler", as in the pooled hostnames of Lakebase autoscaling
// and Neon (ep-name-123456-pooler.region...).
func poolerHostName(host string) bool {
	first, _, _ := strings.Cut(strings.ToLower(host), ".")
	return strings.Contains(first, "pooler")
}

// backendSwitches reports whether a client connection is served by another
// server backend after a transaction ends, as a transaction pooler does: A
// and B each hold a transaction, B's ends first and A's last, so that a
// pooler that reuses the most recently freed server (PgBouncer's default)
// gives B's next statement A's server. Directly connected, B keeps its own.
func backendSwitches(ctx context.Context, db *sql.DB) (bool, error) {
	a, err := db.Conn(ctx)
	if err != nil {
		return false, err
	}
	defer a.Close()
	b, err := db.Conn(ctx)
	if err != nil {
		return false, err
	}
	defer b.Close()
	txA, err := a.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer txA.Rollback()
	txB, err := b.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer txB.Rollback()
	var pidA, pidB, pidB2 int
	if err := txA.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&pidA); err != nil {
		return false, err
	}
	if err := txB.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&pidB); err != nil {
		return false, err
	}
	if err := txB.Commit(); err != nil {
		return false, err
	}
	if err := txA.Commit(); err != nil {
		return false, err
	}
	if err := b.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&pidB2); err != nil {
		return false, err
	}
	return pidB2 != pidB, nil
}

func (d *doctor) sqlite(ctx context.Context, t target) {
	const fileName = "SQLite file"
	st, err := os.Stat(t.sqlite)
	switch {
	case errors.Is(err, os.ErrNotExist):
		d.problem(fileName, t.sqlite+" does not exist", "check --sqlite, or create it with `lakesession migrate up --sqlite "+t.sqlite+"`")
		return
	case err != nil:
		d.problem(fileName, err.Error(), "check the path and its permissions")
		return
	case st.IsDir():
		d.problem(fileName, t.sqlite+" is a directory", "pass the path of the database file")
		return
	}
	db, err := sqlitedb.Open(t.sqlite)
	if err != nil {
		d.problem(fileName, err.Error(), "check that the file is an SQLite database and readable")
		return
	}
	defer db.Close()
	var version, journal string
	err = db.QueryRowContext(ctx, "SELECT sqlite_version()").Scan(&version)
	if err == nil {
		err = db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&journal)
	}
	if err != nil {
		d.problem(fileName, fmt.Sprintf("%s cannot be read: %v", t.sqlite, err), "check that the file is an SQLite database")
		return
	}
	d.ok(fileName, "%s (%d bytes), SQLite %s, journal_mode %s", t.sqlite, st.Size(), version, journal)

	s, m := d.a.conn.sessionsTable, d.a.conn.messagesTable
	sc, err := columns(ctx, db, sqliteColumns, s)
	var mc map[string]column
	if err == nil {
		mc, err = columns(ctx, db, sqliteColumns, m)
	}
	if err != nil {
		d.problem("tables", err.Error(), "check that the file is an SQLite database")
		return
	}
	var missing []string
	if len(sc) == 0 {
		missing = append(missing, s)
	}
	if len(mc) == 0 {
		missing = append(missing, m)
	}
	if len(missing) > 0 {
		d.problem("tables", joinList(missing)+" missing from "+t.sqlite, d.createFix())
		d.skip("table shape and indexes", "they need the tables")
	} else {
		d.ok("tables", "%s and %s exist", s, m)
		var problems shapeProblems
		is := func(want ...string) func(string) bool {
			return func(t string) bool {
				return slices.ContainsFunc(want, func(w string) bool { return strings.EqualFold(t, w) })
			}
		}
		problems.want(s, sc, "session_id", "VARCHAR", is("VARCHAR", "TEXT"), false)
		problems.want(s, sc, "created_at", "TIMESTAMP", is("TIMESTAMP"), true)
		problems.want(s, sc, "updated_at", "TIMESTAMP", is("TIMESTAMP"), true)
		problems.want(m, mc, "id", "INTEGER", is("INTEGER"), false)
		problems.want(m, mc, "session_id", "VARCHAR", is("VARCHAR", "TEXT"), false)
		problems.want(m, mc, "message_data", "TEXT", is("TEXT"), false)
		problems.want(m, mc, "created_at", "TIMESTAMP", is("TIMESTAMP"), true)
		problems.report(d, "session_id VARCHAR, created_at and updated_at TIMESTAMP, id INTEGER, message_data TEXT")
		d.indexes(ctx, db, sqliteIndexes, s, m, "check that the file is an SQLite database")
	}

	const writeName = "write access"
	tx, err := db.BeginTx(ctx, nil) // BEGIN IMMEDIATE: takes the write lock
	if err == nil {
		err = tx.Rollback()
	}
	if err != nil {
		d.problem(writeName, fmt.Sprintf("%s cannot be written: %v", t.sqlite, err), "make the file and its directory writable by this user (SQLite writes its -wal and -shm files beside it)")
		return
	}
	d.ok(writeName, "%s can be written", t.sqlite)
}
