// Command bunservice is a Bun service with a model and table of its own
// (support tickets) that keeps each ticket's conversation with lakesession,
// in the same database. It shows the three things such a service does:
//
//   - It runs lakesession's migrations among its own with one bun/migrate
//     migrator: the tickets table comes after agent_sessions, whose
//     session_id its foreign key references.
//   - It writes a ticket and the first items of its conversation in one
//     transaction (bunstore works on a bun.Tx), so either both are stored or
//     neither is.
//   - It reads its own rows next to the conversation rows with the
//     lakesession models.
//
// # Run
//
//	go run ./bunservice                  # SQLite file bunservice.db
//	DATABASE_URL=postgres://... go run ./bunservice
//
// Run it twice: the second run finds the migrations applied and adds one
// more ticket.
package main
