// Command databasesql is an existing database/sql application that adds
// conversation memory with lakesession. It keeps its *sql.DB and its own SQL;
// the connector gives that *sql.DB its connections (each one logging in with
// a fresh Lakebase token), and the session store runs on the same pool,
// wrapped by Bun.
//
// # Run
//
// On Lakebase, authenticated with the Databricks SDK's usual DATABRICKS_*
// variables (or ~/.databrickscfg):
//
//	LAKEBASE_INSTANCE_NAME=my-instance go run ./databasesql
//	LAKEBASE_ENDPOINT=projects/p/branches/b/endpoints/e go run ./databasesql
//	LAKEBASE_PROJECT=p LAKEBASE_BRANCH=b go run ./databasesql
//
// LAKEBASE_DATABASE names a database other than databricks_postgres.
//
// On any PostgreSQL:
//
//	DATABASE_URL=postgres://app:secret@localhost:5432/app go run ./databasesql
//
// # The pattern
//
//	src, err := lakebasecred.New(ctx, w, lakebasecred.Target{Instance: "my-instance"})
//	c, err := connector.ForLakebase(src)      // each new connection logs in with src's token
//	db := connector.OpenDB(c)                 // the app's *sql.DB, as before
//	bdb := bun.NewDB(db, pgdialect.New())     // the same pool, for the store
//	store, err := bunstore.New(bdb)
//	err = store.CreateTables(ctx)
//	err = store.Session("customer-42").AddItems(ctx, items)
package main
