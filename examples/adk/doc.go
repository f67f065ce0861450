// Command adk runs an agent of Google's Agent Development Kit for Go
// (google.golang.org/adk/v2) whose sessions live in Databricks Lakebase.
// ADK keeps them with its own database session service
// (google.golang.org/adk/v2/session/database), which runs on GORM. GORM's
// PostgreSQL driver is given the *sql.DB that connector.OpenDB returns, so
// every query ADK makes goes through the connector, whose new connections log
// in with the current Lakebase OAuth token: tokens rotate under ADK without
// ADK knowing.
//
// It is its own module, so that users of the library do not download ADK.
//
// # Run
//
// On Lakebase, authenticated with the Databricks SDK's usual DATABRICKS_*
// variables (or ~/.databrickscfg):
//
//	LAKEBASE_INSTANCE_NAME=my-instance go run .
//	LAKEBASE_ENDPOINT=projects/p/branches/b/endpoints/e go run .
//	LAKEBASE_PROJECT=p LAKEBASE_BRANCH=b go run .
//
// LAKEBASE_DATABASE names a database other than databricks_postgres.
//
// On any PostgreSQL:
//
//	DATABASE_URL=postgres://app:secret@localhost:5432/app go run .
//
// It creates an ADK session, has three turns with a weather agent ("Hello I
// live in SF!", "What city did I say I live in?", "What's the weather where
// I live?", the last one calling the agent's get_weather tool), and prints
// the session's events as ADK reads them back from the database.
//
// # The model
//
// ADK agents normally call Gemini. Without GOOGLE_API_KEY the example uses a
// small offline model instead (an ADK model.LLM that says "[offline demo
// model]" in every reply): it is not a language model, needs no network and
// no credentials, and answers only from the contents ADK sends it, so its
// answers show that the history came back from the database. With a Gemini
// API key the same agent runs on Gemini (GEMINI_MODEL, default
// gemini-2.5-flash):
//
//	GOOGLE_API_KEY=... LAKEBASE_INSTANCE_NAME=my-instance go run .
//
// In your own code, pass any model.LLM to llmagent.Config.Model, for example
// gemini.NewModel(ctx, "gemini-2.5-flash", &genai.ClientConfig{APIKey: key}).
//
// # The pattern
//
//	src, err := lakebasecred.New(ctx, w, lakebasecred.Target{Instance: "my-instance"})
//	c, err := connector.ForLakebase(src, connector.WithSchema("adk")) // each new connection logs in with src's token
//	db := connector.OpenDB(c)
//	svc, err := database.NewSessionService(postgres.New(postgres.Config{Conn: db}), &gorm.Config{})
//	err = database.AutoMigrate(svc) // ADK's tables: sessions, events, app_states, user_states
//	r, err := runner.New(runner.Config{AppName: "my_app", Agent: a, SessionService: svc})
//
// postgres.New(postgres.Config{Conn: db}) (gorm.io/driver/postgres) makes
// GORM use db as it is: GORM opens no pool of its own, and closing db is
// yours to do (after the runner is done; then close src).
//
// # Tables and schema
//
// ADK's table names are generic (sessions, events, app_states,
// user_states), so the example keeps them in a schema of their own, ADK_SCHEMA
// (default adk): it opens the pool with connector.WithSchema, which puts the
// schema first on every connection's search_path, and creates the schema when
// it is missing (the role needs CREATE on the database for that; otherwise
// create the schema beforehand and grant the role USAGE and CREATE on it).
// GORM's AutoMigrate then creates and finds the tables there.
//
// The example's GORM logger reports only warnings and errors, without the
// statements' parameters, so that no message content reaches the log.
package main
