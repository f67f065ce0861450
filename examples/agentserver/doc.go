// Command agentserver is an agent HTTP server in the shape of the Databricks
// agent template, whose conversations are kept by lakesession: one session
// per custom_inputs.session_id, on an embedded SQLite file, a PostgreSQL
// database or Databricks Lakebase.
//
// # Run
//
//	go run ./agentserver                   # SQLite file agentserver.db, offline model
//	curl -s localhost:8000/invocations -d '{"input":[{"role":"user","content":"Hello I live in SF!"}]}'
//	curl -s localhost:8000/invocations -d '{"input":[{"role":"user","content":"What city did I say I live in?"}],
//	    "custom_inputs":{"session_id":"<custom_outputs.session_id of the first answer>"}}'
//	curl -s localhost:8000/invocations -d '{"input":[{"role":"user","content":"What'"'"'s the weather where I live?"}],
//	    "custom_inputs":{"session_id":"<the same id>"}}'
//	curl -sN localhost:8000/invocations -d '{"input":[{"role":"user","content":"Hello!"}],"stream":true}'
//
// The agent has one tool, get_weather(city), answered from a fixed table of
// demo data (SF, Paris, Lisbon, London, New York, Berlin, Tokyo). The third
// request above makes the model call it for the city the history names; the
// turn's question, call, tool output and answer are stored as one batch.
//
// SIGINT or SIGTERM stop it gracefully: requests in flight are finished
// (for up to 30 seconds), then the database is closed.
//
// # Flags and environment
//
//	-addr           listen address; default $ADDR, else :$DATABRICKS_APP_PORT, else 127.0.0.1:8000
//	-history-limit  how many of the latest history items are read for the model; default $HISTORY_LIMIT, else all
//	                (a tool output whose call the window cuts off is left out)
//
// Storage (see package storage): SQLITE_PATH (default agentserver.db),
// DATABASE_URL for PostgreSQL, or LAKEBASE_INSTANCE_NAME (name or hostname),
// LAKEBASE_ENDPOINT, or LAKEBASE_PROJECT with LAKEBASE_BRANCH for Lakebase,
// authenticated with the Databricks SDK's usual DATABRICKS_* variables.
//
// Model: OPENAI_BASE_URL, OPENAI_API_KEY and OPENAI_MODEL select any
// OpenAI-compatible chat completions endpoint, which gets get_weather as a
// function tool; AGENT_INSTRUCTIONS is sent as its system message. A Databricks model serving endpoint is one of them:
//
//	OPENAI_BASE_URL=https://<workspace-host>/serving-endpoints
//	OPENAI_API_KEY=<a Databricks token>
//	OPENAI_MODEL=<serving endpoint name, e.g. databricks-claude-sonnet-4>
//
// or, authenticated by the Databricks SDK like Lakebase (DATABRICKS_HOST
// with any DATABRICKS_* method, e.g. the OAuth client of a Databricks App):
//
//	DATABRICKS_SERVING_ENDPOINT=<serving endpoint name>
//
// With none of them set, the server uses a small offline model that is not a
// language model: it says so in every reply, only recalls where the user
// said they live and their name, from the session's history, and calls
// get_weather when asked about the weather.
//
// Telemetry (see package telemetry): nothing by default. With
// OTEL_TRACES_EXPORTER=console and OTEL_METRICS_EXPORTER=console, spans and
// metrics go to stdout as JSON lines (logs stay on stderr); with
// OTEL_EXPORTER_OTLP_ENDPOINT (http/protobuf, e.g. http://localhost:4318),
// to an OTLP collector. A request is one trace: the HTTP server span
// "POST /invocations", the store's lakesession.GetItems and
// lakesession.AddItems under it (with lakesession.connect under those when
// a connection is opened, and lakebase.token.mint when a token is minted),
// the model's "chat <model>" spans, with the model endpoint's HTTP client
// spans under them, and "execute_tool get_weather". The last spans and
// metrics are flushed at exit. OTEL_SERVICE_NAME (default agentserver),
// OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER and the other OTEL_*
// variables of the SDK and the OTLP exporters apply.
//
//	OTEL_TRACES_EXPORTER=console go run ./agentserver
package main
