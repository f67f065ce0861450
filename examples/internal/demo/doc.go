// Package demo holds the conversation the demos hold with the agent server
// (the two requests of the Databricks agent template's README) and prints the
// rows it leaves in the database.
package demo
