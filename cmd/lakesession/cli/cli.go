package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/databricks/databricks-sdk-go"
	"github.com/databricks/databricks-sdk-go/logger"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Exit codes of Run.
const (
	// ExitOK: the command did what it was asked.
	ExitOK = 0
	// ExitFailure: the command ran and failed, or doctor found a problem.
	ExitFailure = 1
	// ExitUsage: the command line or the connection settings are wrong
	// (unknown command or flag, missing argument, no database chosen, two
	// databases chosen, a database URL that cannot be parsed); nothing was
	// done.
	ExitUsage = 2
)

// Env is what a run of the command sees of the world. The zero value of
// each field means the process's own (os.Stdin, os.Getenv, ...), so
// Run(ctx, args, Env{}) behaves as the lakesession binary.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Getenv reads an environment variable (DATABASE_URL, LAKEBASE_*).
	// The Databricks SDK reads its own DATABRICKS_* variables from the
	// process environment, unless Workspace says otherwise.
	Getenv func(string) string
	// Environ is the environment psql is started with, before lakesession
	// adds the connection's PG* variables.
	Environ func() []string
	// IsTerminal reports whether w is a terminal; a progress bar is drawn
	// on Stderr only when it is. The default checks the file descriptor of
	// an *os.File.
	IsTerminal func(w io.Writer) bool
	// Workspace returns the Databricks client for a Lakebase target; the
	// default is databricks.NewWorkspaceClient(cfg), whose authentication
	// is the SDK's own (DATABRICKS_* variables, ~/.databrickscfg).
	Workspace func(cfg *databricks.Config) (*databricks.WorkspaceClient, error)
	// LookPath finds psql; the default is exec.LookPath.
	LookPath func(file string) (string, error)
	// Exec replaces the process with psql (argv[0] is the program name);
	// the default is syscall.Exec where there is one, else psql runs as a
	// child whose exit code becomes lakesession's.
	Exec func(path string, argv []string, env []string) error
	// Now is the clock for --older-than and --since; the default is
	// time.Now.
	Now func() time.Time
}

func (e Env) withDefaults() Env {
	if e.Stdin == nil {
		e.Stdin = os.Stdin
	}
	if e.Stdout == nil {
		e.Stdout = os.Stdout
	}
	if e.Stderr == nil {
		e.Stderr = os.Stderr
	}
	if e.Getenv == nil {
		e.Getenv = os.Getenv
	}
	if e.Environ == nil {
		e.Environ = os.Environ
	}
	if e.IsTerminal == nil {
		e.IsTerminal = isTerminal
	}
	if e.Workspace == nil {
		e.Workspace = func(cfg *databricks.Config) (*databricks.WorkspaceClient, error) {
			return databricks.NewWorkspaceClient(cfg)
		}
	}
	if e.LookPath == nil {
		e.LookPath = exec.LookPath
	}
	if e.Exec == nil {
		e.Exec = execProcess
	}
	if e.Now == nil {
		e.Now = time.Now
	}
	return e
}

// usageError is a mistake in the command line or the connection settings:
// exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// reportedError is a failure whose details the command already printed.
type reportedError struct{ msg string }

func (e *reportedError) Error() string { return e.msg }

var quietSDK sync.Once

// app is one run of the command.
type app struct {
	env  Env
	conn connFlags
	// started is set when a command's own code begins: an error before it
	// comes from cobra's parsing of the command line.
	started bool
}

// Run runs the lakesession command with args (without the program name)
// and returns its exit code: ExitOK, ExitFailure or ExitUsage. Errors are
// written to env.Stderr, results to env.Stdout. It is what the lakesession
// binary's main calls; tests call it directly.
func Run(ctx context.Context, args []string, env Env) int {
	a := &app{env: env.withDefaults()}
	quietSDK.Do(func() {
		// The Databricks SDK logs warnings (such as a host without a
		// metadata endpoint) to the standard logger; a command's output
		// is its own.
		logger.DefaultLogger = &logger.SimpleLogger{Level: logger.LevelError}
	})

	root := a.rootCommand()
	root.SetArgs(args)
	root.SetIn(a.env.Stdin)
	root.SetOut(a.env.Stdout)
	root.SetErr(a.env.Stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return ExitOK
	}
	var (
		ue *usageError
		re *reportedError
	)
	switch {
	case errors.As(err, &re):
		if re.msg != "" {
			fmt.Fprintf(a.env.Stderr, "lakesession: %s\n", re.msg)
		}
		return ExitFailure
	case errors.As(err, &ue) || !a.started:
		fmt.Fprintf(a.env.Stderr, "lakesession: %s\n", err)
		name := "lakesession"
		if cmd != nil {
			name = cmd.CommandPath()
		}
		fmt.Fprintf(a.env.Stderr, "Run '%s --help' for usage.\n", name)
		return ExitUsage
	default:
		if missingTable(err) {
			fmt.Fprintf(a.env.Stderr, "lakesession: %s (the tables are missing: create them with `lakesession migrate up`, or check --schema and the table flags)\n", err)
			return ExitFailure
		}
		fmt.Fprintf(a.env.Stderr, "lakesession: %s\n", err)
		return ExitFailure
	}
}

// run wraps a command's code, marking that parsing is over.
func (a *app) run(fn func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		a.started = true
		return fn(cmd, args)
	}
}

// group is the RunE of a command that only holds subcommands.
func (a *app) group(cmd *cobra.Command, args []string) error {
	var names []string
	for _, c := range cmd.Commands() {
		if c.IsAvailableCommand() {
			names = append(names, c.Name())
		}
	}
	list := strings.Join(names, ", ")
	if len(args) == 0 {
		if cmd == cmd.Root() {
			return usagef("give a command: %s", list)
		}
		return usagef("%s needs a command: %s", cmdName(cmd), list)
	}
	return usagef("%s has no command %q: use %s", cmdName(cmd), args[0], list)
}

// cmdName is the command's path without the program's name, which every
// message already starts with.
func cmdName(cmd *cobra.Command) string {
	if cmd == cmd.Root() {
		return cmd.Name()
	}
	return strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" ")
}

// quoted lists args, each quoted, separated by spaces.
func quoted(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = strconv.Quote(a)
	}
	return strings.Join(q, " ")
}

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "lakesession",
		Short: "Operate lakesession's conversation tables: migrate, inspect, export, import, prune; Lakebase tokens, psql and checks",
		Long: `lakesession operates the agent_sessions and agent_messages tables that the
lakesession Go library and the Python SQLAlchemySession share: it applies
the migrations, lists, shows, exports, imports and deletes sessions, prunes
old ones, and on Databricks Lakebase mints tokens, starts psql and checks a
setup.

Where to connect (one of):
  --database-url URL   PostgreSQL with a static password (or DATABASE_URL)
  --sqlite PATH        an SQLite file
  a Lakebase target    --instance NAME (LAKEBASE_INSTANCE_NAME), or
                       --endpoint projects/P/branches/B/endpoints/E (LAKEBASE_ENDPOINT),
                       or --project P --branch B (LAKEBASE_PROJECT, LAKEBASE_BRANCH),
                       with the Databricks SDK's authentication (DATABRICKS_*,
                       ~/.databrickscfg, --profile)

Exit codes: 0 ok, 1 failure (or a problem found by doctor), 2 usage.`,
		Version:       version(),
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE:          a.group,
	}
	root.CompletionOptions.HiddenDefaultCmd = true
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		if cmd.Name() == "psql" {
			return usagef("%v (put psql's own options after --: lakesession psql -- -c 'SELECT 1')", err)
		}
		return &usageError{msg: err.Error()}
	})
	a.conn.register(root.PersistentFlags())

	root.AddCommand(a.migrateCommand(), a.sessionsCommand(), a.pruneCommand(),
		a.tokenCommand(), a.psqlCommand(), a.doctorCommand())
	return root
}

// intFlagCheck reports a negative or out-of-range --limit-like flag.
func checkRange(fs *pflag.FlagSet, name string, v, lo, hi int) error {
	if !fs.Changed(name) {
		return nil
	}
	if v < lo || v > hi {
		return usagef("--%s %d: use %d to %d", name, v, lo, hi)
	}
	return nil
}

// exactArgs and friends return usage errors that say what is missing.
func minArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < n {
			return usagef("%s needs %s", cmdName(cmd), what)
		}
		return nil
	}
}

func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			if len(args) < n {
				return usagef("%s needs %s", cmdName(cmd), what)
			}
			return usagef("%s takes %s, not %s", cmdName(cmd), what, quoted(args[n:]))
		}
		return nil
	}
}

func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("%s takes no arguments, not %s", cmdName(cmd), quoted(args))
	}
	return nil
}

// missingTable reports whether err says that a table does not exist:
// PostgreSQL's 42P01, or SQLite's "no such table".
func missingTable(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "42P01"
	}
	return strings.Contains(err.Error(), "no such table")
}
