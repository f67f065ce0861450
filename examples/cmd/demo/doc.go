// Command demo runs the agent server example on an embedded SQLite file and
// holds the conversation of the Databricks agent template's README with it:
// "Hello I live in SF!", then "What city did I say I live in?" in the same
// session. It prints both answers and the rows stored, stops the server
// with SIGTERM, and exits 0 only if every step worked (the second answer
// recalls SF, the server stops cleanly).
//
// It needs no database server, no network and no credentials: the server
// runs the offline demo model, with every DATABASE_URL, LAKEBASE_*, OPENAI_*
// and DATABRICKS_SERVING_ENDPOINT variable removed from its environment.
//
//	go build -o /tmp/agentserver ./agentserver
//	go run ./cmd/demo -server /tmp/agentserver
//
// `make demo` does this.
package main
