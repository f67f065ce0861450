// Package models holds the Bun models of the two tables lakesession stores
// conversations in: AgentSession (agent_sessions) and AgentMessage
// (agent_messages).
//
// The tables have exactly the columns of the Python openai-agents
// SQLAlchemySession, so a Go service and a Python agent can share one
// database:
//
//	agent_sessions (
//	  session_id   VARCHAR   PRIMARY KEY,
//	  created_at   TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
//	  updated_at   TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)
//	agent_messages (
//	  id           BIGINT    PRIMARY KEY,  -- SERIAL (INTEGER) when Python made the table
//	  session_id   VARCHAR   NOT NULL REFERENCES agent_sessions ON DELETE CASCADE,
//	  message_data TEXT      NOT NULL,     -- one item, compact JSON
//	  created_at   TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)
//
// The tables are created by the migrations package (with bun/migrate) or by
// bunstore.Store.CreateTables. Reading and writing items goes through
// bunstore, which keeps the order, atomicity and concurrency guarantees; the
// models are for an application's own queries, such as reports or exports.
//
// # Reading rows with Bun
//
//	var msgs []models.AgentMessage
//	err := db.NewSelect().
//		Model(&msgs).
//		Where("session_id = ?", "user-789").
//		Order("created_at", "id").
//		Scan(ctx)
//
// # Custom table names
//
// With bunstore.WithTables or WithSchema the tables have other names; point
// the model at them with ModelTableExpr:
//
//	err := db.NewSelect().
//		Model(&msgs).
//		ModelTableExpr("?.? AS m", bun.Ident("app"), bun.Ident("chat_messages")).
//		Where("session_id = ?", id).
//		Order("created_at", "id").
//		Scan(ctx)
//
// # Times
//
// The timestamp columns have no time zone, as in the Python implementation:
// on PostgreSQL the database writes the wall-clock time of the connection's
// TimeZone setting, on SQLite the UTC time. Scanned into a time.Time these
// wall-clock digits land in the UTC location; use bunstore.Store.ListSessions
// for the instants.
package models
