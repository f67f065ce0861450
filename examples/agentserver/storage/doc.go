// Package storage opens the session store of the agent server example: an
// embedded SQLite file by default, any PostgreSQL by URL, or a Databricks
// Lakebase database found through the Databricks SDK.
//
// # Configuration
//
// The server reads its configuration from the environment with FromEnv; a
// program can also fill a Config itself. At most one of DATABASE_URL and the
// LAKEBASE_* target may be set:
//
//	SQLITE_PATH             the SQLite file when nothing else is set (default agentserver.db)
//	DATABASE_URL            a PostgreSQL URL or keyword/value DSN, with a static password
//	LAKEBASE_INSTANCE_NAME  a provisioned Lakebase instance, by name or by hostname
//	LAKEBASE_ENDPOINT       an autoscaling endpoint: projects/{p}/branches/{b}/endpoints/{e}
//	LAKEBASE_PROJECT        with LAKEBASE_BRANCH: that branch's read-write endpoint
//	LAKEBASE_DATABASE       the Lakebase database (default databricks_postgres)
//
// Lakebase authenticates with the SDK's usual DATABRICKS_* variables or
// ~/.databrickscfg profile (databricks.NewWorkspaceClient()); every new
// connection logs in with a fresh OAuth token as its password.
//
// # Use
//
//	st, err := storage.Open(ctx, storage.FromEnv(os.Getenv))
//	if err != nil {
//		return err
//	}
//	defer st.Close()
//	sess := st.Store.Session("user-789")
package storage
