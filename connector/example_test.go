package connector_test

import (
	"context"
	"fmt"
	"log"
	"sync"
	"time"

	"github.com/databricks/databricks-sdk-go"
	"github.com/jackc/pgx/v5"

	"github.com/lakesession/lakesession/connector"
	"github.com/lakesession/lakesession/lakebasecred"
)

// A pool on a Lakebase database, with tokens minted and cached by
// lakebasecred. Needs a Databricks workspace (DATABRICKS_HOST and
// DATABRICKS_TOKEN, or another DATABRICKS_* method).
func ExampleForLakebase() {
	ctx := context.Background()
	w, err := databricks.NewWorkspaceClient()
	if err != nil {
		log.Fatal(err)
	}
	src, err := lakebasecred.New(ctx, w, lakebasecred.Target{Instance: "my-instance"})
	if err != nil {
		log.Fatal(err)
	}
	defer src.Close()

	c, err := connector.ForLakebase(src, connector.WithSchema("agents"))
	if err != nil {
		log.Fatal(err)
	}
	db := connector.OpenDB(c)
	defer db.Close()

	var user string
	if err := db.QueryRowContext(ctx, "SELECT current_user").Scan(&user); err != nil {
		log.Fatal(err)
	}
	fmt.Println("logged in as", user)
}

// leaseTokens is a TokenSource of one's own: here a token leased from a
// secret store, cached until the database rejects it.
type leaseTokens struct {
	mu     sync.Mutex
	cached string
	lease  func(context.Context) (string, error) // asks the secret store
}

func (s *leaseTokens) Token(ctx context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cached == "" {
		tok, err := s.lease(ctx)
		if err != nil {
			return "", fmt.Errorf("lease a database token: %w", err)
		}
		s.cached = tok
	}
	return s.cached, nil
}

func (s *leaseTokens) Invalidate() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cached = ""
}

// A pool on any PostgreSQL whose password is a token from a source of one's
// own.
func ExampleNew_tokenSource() {
	tokens := &leaseTokens{lease: func(ctx context.Context) (string, error) {
		return "", fmt.Errorf("no secret store in this example")
	}}
	c, err := connector.New(connector.Config{
		Host:        "db.internal.example.com",
		User:        "app",
		Database:    "app",
		Tokens:      tokens,
		SSLMode:     "verify-full",
		SSLRootCert: "system",
	})
	if err != nil {
		log.Fatal(err)
	}
	db := connector.OpenDB(c)
	defer db.Close()
	fmt.Println(c)
	// Output:
	// connector.Connector(host=db.internal.example.com port=5432 user=app database=app sslmode=verify-full password=token source *connector_test.leaseTokens)
}

// A pool on a local PostgreSQL with a static password in a DSN.
func ExampleNew_staticPassword() {
	c, err := connector.New(connector.Config{
		DSN:    "postgres://app:secret@localhost:5432/app?sslmode=disable",
		Schema: "agents",
	})
	if err != nil {
		log.Fatal(err)
	}
	db := connector.OpenDB(c)
	defer db.Close()
	fmt.Println(c) // the password is never shown
	// Output:
	// connector.Connector(host=localhost port=5432 user=app database=app tls=off password=static schema=agents)
}

// New reports every problem of a Config at once, each saying what to set.
func ExampleConfigError() {
	_, err := connector.New(connector.Config{
		Host:     "db.example.com",
		User:     "app",
		Tokens:   &leaseTokens{},
		SSLMode:  "prefer",
		Password: "secret",
	})
	fmt.Println(err)
	// Output:
	// connector: invalid configuration (3 problems): Database is empty: set Config.Database (on Lakebase it is databricks_postgres); Tokens and Password are both set: set only one of them; SSLMode "prefer" can send the token without TLS: with Config.Tokens set SSLMode to require, verify-ca or verify-full (empty means verify-full)
}

// Through a transaction pooler of your own (PgBouncer in transaction mode),
// statements must not be prepared by name on the server connection: pgx's
// exec mode QueryExecModeExec sends each one with its arguments. It works
// with a token source as with a static password.
func ExampleConfig_queryExecMode() {
	c, err := connector.New(connector.Config{
		Host:           "pgbouncer.internal.example.com",
		Port:           6432,
		User:           "app",
		Database:       "app",
		Password:       "secret",
		SSLMode:        "verify-full",
		QueryExecMode:  pgx.QueryExecModeExec,
		MaxConnectWait: 10 * time.Second, // wait out a restart of the pooler up to 10 s
	})
	if err != nil {
		log.Fatal(err)
	}
	db := connector.OpenDB(c)
	defer db.Close()
	fmt.Println(c)
	// Output:
	// connector.Connector(host=pgbouncer.internal.example.com port=6432 user=app database=app sslmode=verify-full password=static query_exec_mode=exec)
}

// WithQueryExecMode chooses pgx's query exec mode: here, through a Lakebase
// pooler that is PgBouncer 1.21 or later with max_prepared_statements set,
// pgx's statement cache can stay on, instead of the exec mode that
// WithPooledHost sets.
func ExampleWithQueryExecMode() {
	ctx := context.Background()
	w, err := databricks.NewWorkspaceClient()
	if err != nil {
		log.Fatal(err)
	}
	src, err := lakebasecred.New(ctx, w, lakebasecred.Target{Project: "agents", Branch: "production"})
	if err != nil {
		log.Fatal(err)
	}
	defer src.Close()

	c, err := connector.ForLakebase(src,
		connector.WithPooledHost(),
		connector.WithQueryExecMode(pgx.QueryExecModeCacheStatement),
	)
	if err != nil {
		log.Fatal(err)
	}
	db := connector.OpenDB(c)
	defer db.Close()
	if err := db.PingContext(ctx); err != nil {
		log.Fatal(err)
	}
}

// A Lakebase autoscaling endpoint with a connection pooler: WithPooledHost
// connects to its pooled host (read_write_pooled_host) with the exec mode a
// transaction pooler needs. An endpoint without one is a *ConfigError.
func ExampleWithPooledHost() {
	ctx := context.Background()
	w, err := databricks.NewWorkspaceClient()
	if err != nil {
		log.Fatal(err)
	}
	src, err := lakebasecred.New(ctx, w, lakebasecred.Target{Endpoint: "projects/agents/branches/production/endpoints/primary"})
	if err != nil {
		log.Fatal(err)
	}
	defer src.Close()
	fmt.Println("pooled host:", src.PooledHost())

	c, err := connector.ForLakebase(src, connector.WithPooledHost())
	if err != nil {
		log.Fatal(err) // no pooled host: connect without WithPooledHost
	}
	db := connector.OpenDB(c)
	defer db.Close()
	if err := db.PingContext(ctx); err != nil {
		log.Fatal(err)
	}
}
