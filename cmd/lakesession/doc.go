// Command lakesession operates the conversation tables of lakesession (and
// of the Python SQLAlchemySession, which shares them): it applies the
// migrations, lists, shows, exports, imports and deletes sessions, prunes
// old ones, and on Databricks Lakebase mints tokens, starts psql and
// checks a setup.
//
//	go install github.com/lakesession/lakesession/cmd/lakesession@latest
//
// @latest is the highest cmd/lakesession/vX.Y.Z tag, whose go.mod requires
// a tagged library; in a clone of the repository, where go.mod builds
// against the library beside it (a replace directive, which go install
// MODULE@VERSION refuses), run go install . in this directory.
//
// It is a module of its own, so that users of the library do not download
// its dependencies. Its logic is package cli; this package only wires it to
// the process.
//
// # Where to connect
//
// One of, flags first, then the environment:
//
//	--database-url URL        PostgreSQL with a static password (DATABASE_URL)
//	--sqlite PATH             an SQLite file
//	--instance NAME           a Lakebase provisioned instance, by name or hostname (LAKEBASE_INSTANCE_NAME)
//	--endpoint projects/P/branches/B/endpoints/E   a Lakebase autoscaling endpoint (LAKEBASE_ENDPOINT)
//	--project P --branch B    that branch's read-write endpoint (LAKEBASE_PROJECT, LAKEBASE_BRANCH)
//
// On Lakebase, the Databricks SDK authenticates as it always does
// (DATABRICKS_HOST with DATABRICKS_TOKEN, DATABRICKS_CLIENT_ID and
// DATABRICKS_CLIENT_SECRET, ~/.databrickscfg with --profile or
// DATABRICKS_CONFIG_PROFILE, ...), and --database (LAKEBASE_DATABASE,
// default databricks_postgres), --user, --port, --sslmode (require,
// verify-ca, verify-full) and --sslrootcert refine the connection. The
// token is the password, always over TLS.
//
// --schema, --sessions-table and --messages-table name the tables as the
// store's WithSchema and WithTables options do.
//
// # Commands
//
//	lakesession migrate up | down --yes | status
//	lakesession sessions list [--limit N] [--cursor C] [--json]
//	lakesession sessions show ID [--limit N] [--json]
//	lakesession sessions export ID... | --all [--since T]
//	lakesession sessions import [FILE] [--if-exists refuse|append]
//	lakesession sessions delete ID...
//	lakesession prune --older-than 30d [--dry-run] [--batch-size N]
//	lakesession token
//	lakesession psql [-- PSQL-ARGS...]
//	lakesession doctor
//
// migrate runs the migrations of package migrations through bun/migrate,
// recorded in its tables lakesession_migrations and
// lakesession_migration_locks (--migrations-table,
// --migration-locks-table), the names package migrations documents, so an
// application that runs the migrations itself sees the same state. An
// application that discovers the files into its own collection records them
// in its own table: pass --migrations-table bun_migrations
// --migration-locks-table bun_migration_locks to share it; migrate down
// then refuses to roll back lakesession's group under the application's
// later ones.
//
// prune's age is a number and a unit, w, d, h, min or s (30d, 1d12h,
// 90min); m is refused, since 6m could mean minutes or months.
//
// prune and sessions delete draw a progress bar on stderr when it is a
// terminal, and print one result line on stdout in any case.
//
// # JSON Lines
//
// export writes, and import reads, one item per line:
//
//	{"session_id":"user-789","item":{"role":"user","content":"Hello I live in SF!"}}
//
// A session's lines are its items in order, oldest first (they need not be
// next to each other). Export writes every item exactly as stored; import
// adds each session's items in one batch, compacted as the store stores
// them, so an export imports back byte for byte. Other members of a line
// are ignored, and blank lines skipped. From jq or Python:
//
//	jq -c '{session_id: "s1", item: .[]}' items.json | lakesession sessions import --sqlite s.db
//	print(json.dumps({"session_id": session_id, "item": item}))
//
// import checks every line before it writes: with any bad line it reports
// each one with its line number and imports nothing; a session that exists
// already makes it import nothing, unless --if-exists append.
//
// # Exit codes
//
// 0 ok; 1 failure, or a problem found by doctor; 2 usage (a wrong command
// line or connection settings, such as no database, two, or a database URL
// that cannot be parsed: nothing was done).
//
// # Secrets
//
// Nothing the command prints holds a password or a token, except the token
// that `lakesession token` prints on stdout. psql gets the token in its
// environment (PGPASSWORD), never on its command line.
package main
