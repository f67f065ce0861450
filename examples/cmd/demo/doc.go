// Command demo runs the agent server example on an embedded SQLite file and
// holds the conversation of the Databricks agent template's README with it:
// "Hello I live in SF!", then "What city did I say I live in?" in the same
// session, then "What's the weather where I live?", for which the agent
// calls its get_weather tool (fixed demo data) with the city from the
// history. It prints the answers, the tool call and its output, and the rows
// stored with their ids and created_at, one AddItems batch per turn; it
// stops the server with SIGTERM, and exits 0 only if every step worked (the
// second answer recalls SF, the third turn stored the question, the call,
// its output and the answer in order in one batch, the server stops
// cleanly).
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
