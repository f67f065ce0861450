package cli

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
)

func (a *app) tokenCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "token",
		Short: "Print a fresh Lakebase token (a password for one hour), and nothing else",
		Long: `token mints a token for the Lakebase target through the Databricks SDK's
authentication and prints it on stdout, followed by a newline, and nothing
else, for scripts:

  PGPASSWORD="$(lakesession token --instance my-instance)" psql "host=... sslmode=require"

A token is a password for about an hour; treat it as one.`,
		Args: noArgs,
		RunE: a.run(func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			t, err := a.lakebaseTarget("token")
			if err != nil {
				return err
			}
			src, err := a.lakebaseSource(ctx, t)
			if err != nil {
				return err
			}
			defer src.Close()
			tok, err := src.Token(ctx)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(a.env.Stdout, tok)
			return err
		}),
	}
}

// lakebaseTarget resolves the target and refuses any but Lakebase.
func (a *app) lakebaseTarget(command string) (target, error) {
	t, err := a.conn.resolve(a.env.Getenv)
	if errors.Is(err, errNoTarget) {
		return target{}, usagef("%s needs a Lakebase target: pass %s", command, lakebaseChoices)
	}
	if err != nil {
		return target{}, err
	}
	if t.kind != kindLakebase {
		return target{}, usagef("%s needs a Lakebase target, not the %s: pass %s", command, t, lakebaseChoices)
	}
	return t, nil
}

// psqlReplaced are the variables psql's environment gets from lakesession,
// and those removed because they would override them (a service file's
// settings beat the environment's; PGHOSTADDR skips PGHOST).
var psqlReplaced = []string{"PGHOST", "PGHOSTADDR", "PGPORT", "PGUSER", "PGDATABASE", "PGPASSWORD", "PGSSLMODE", "PGSERVICE"}

func (a *app) psqlCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "psql [-- PSQL-ARGS...]",
		Short: "Run psql on the Lakebase database, logged in with a fresh token",
		Long: `psql runs psql on the Lakebase target's database: host, port, user and
database from the target, sslmode=require (or --sslmode), and a fresh token
as the password, in psql's environment (PGPASSWORD) and never on its
command line; with --schema, the search path starts with that schema.
Arguments after -- go to psql:

  lakesession psql --instance my-instance -- -c 'SELECT count(*) FROM agent_sessions'

The token is valid for about an hour: a session open longer keeps working,
but a reconnection after that needs a new lakesession psql.`,
		Args: cobra.ArbitraryArgs,
		RunE: a.run(func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			t, err := a.lakebaseTarget("psql")
			if err != nil {
				return err
			}
			path, err := a.env.LookPath("psql")
			if err != nil {
				if errors.Is(err, exec.ErrNotFound) {
					return fmt.Errorf("psql is not on PATH: install the PostgreSQL client (Debian and Ubuntu: apt-get install postgresql-client; macOS: brew install libpq)")
				}
				return fmt.Errorf("find psql: %w", err)
			}
			env, err := a.psqlEnv(ctx, t)
			if err != nil {
				return err
			}
			argv := append([]string{"psql"}, args...)
			if err := a.env.Exec(path, argv, env); err != nil {
				return fmt.Errorf("run %s: %w", path, err)
			}
			return nil
		}),
	}
}

// psqlEnv returns psql's environment: the process's, with the connection's
// PG* variables and the token as PGPASSWORD.
func (a *app) psqlEnv(ctx context.Context, t target) ([]string, error) {
	src, err := a.lakebaseSource(ctx, t)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	tok, err := src.Token(ctx)
	if err != nil {
		return nil, err
	}
	var env []string
	hasAppName := false
	pgOptions := ""
	for _, kv := range a.env.Environ() {
		name, value, _ := strings.Cut(kv, "=")
		if name == "PGOPTIONS" && a.conn.schema != "" {
			pgOptions = value + " "
			continue
		}
		drop := false
		for _, r := range psqlReplaced {
			if name == r {
				drop = true
			}
		}
		if name == "PGSSLROOTCERT" && a.conn.sslRootCert != "" {
			drop = true
		}
		if name == "PGAPPNAME" {
			hasAppName = true
		}
		if !drop {
			env = append(env, kv)
		}
	}
	env = append(env,
		"PGHOST="+src.Host(),
		"PGPORT="+strconv.Itoa(a.conn.port),
		"PGUSER="+src.User(),
		"PGDATABASE="+src.Database(),
		"PGSSLMODE="+a.conn.sslMode,
		"PGPASSWORD="+tok,
	)
	if a.conn.sslRootCert != "" {
		env = append(env, "PGSSLROOTCERT="+a.conn.sslRootCert)
	}
	if !hasAppName {
		env = append(env, "PGAPPNAME=lakesession-psql")
	}
	if a.conn.schema != "" {
		// The schema's quotes keep its case, as the store's do.
		env = append(env, `PGOPTIONS=`+pgOptions+`-c search_path="`+a.conn.schema+`",public`)
	}
	return env, nil
}
