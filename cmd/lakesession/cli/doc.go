// Package cli is the lakesession command: everything the binary does, as
// a function that takes the command line and an environment and returns
// an exit code, so that it runs and is tested without a process. The
// binary (package main of github.com/lakesession/lakesession/cmd/lakesession)
// only wires it to the process:
//
//	func main() {
//		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
//		code := cli.Run(ctx, os.Args[1:], cli.Env{})
//		stop()
//		os.Exit(code)
//	}
//
// # Running it in a program or a test
//
// Env replaces what the command sees of the world: its input and outputs,
// its environment variables, whether stderr is a terminal, the Databricks
// client (for example the one of lakebasetest), and how psql is started.
//
//	var out, errs bytes.Buffer
//	code := cli.Run(ctx, []string{"sessions", "list", "--json", "--sqlite", "sessions.db"}, cli.Env{
//		Stdout: &out,
//		Stderr: &errs,
//		Getenv: func(string) string { return "" }, // ignore DATABASE_URL and LAKEBASE_*
//	})
//
//	code = cli.Run(ctx, []string{"token"}, cli.Env{
//		Getenv:    func(k string) string { return map[string]string{"LAKEBASE_INSTANCE_NAME": "my-instance"}[k] },
//		Workspace: func(*databricks.Config) (*databricks.WorkspaceClient, error) { return fake.WorkspaceClient(), nil },
//	})
//
// # Exit codes
//
// ExitOK (0) when the command did what it was asked; ExitFailure (1) when
// it ran and failed, or doctor found a problem; ExitUsage (2) for a wrong
// command line or connection settings, when nothing was done. The
// commands and their flags are described in the documentation of the
// binary and by lakesession --help.
//
// # Secrets
//
// No output of the command contains a password or a token, except the
// token that `lakesession token` prints on stdout. psql gets its token in
// its environment (PGPASSWORD), never on its command line.
package cli
