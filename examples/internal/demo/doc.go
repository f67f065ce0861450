// Package demo holds the conversation the demos hold with the agent server
// (the two requests of the Databricks agent template's README, then a
// question about the weather that makes the agent call its tool), prints
// the rows it leaves in the database, and checks that each turn is one
// batch of them.
package demo
