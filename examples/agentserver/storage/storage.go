package storage

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/databricks/databricks-sdk-go"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/lakesession/lakesession/bunstore"
	"github.com/lakesession/lakesession/bunstore/sqlitedb"
	"github.com/lakesession/lakesession/connector"
	"github.com/lakesession/lakesession/lakebasecred"
)

// The environment variables FromEnv reads.
const (
	EnvSQLitePath       = "SQLITE_PATH"
	EnvDatabaseURL      = "DATABASE_URL"
	EnvLakebaseInstance = "LAKEBASE_INSTANCE_NAME"
	EnvLakebaseEndpoint = "LAKEBASE_ENDPOINT"
	EnvLakebaseProject  = "LAKEBASE_PROJECT"
	EnvLakebaseBranch   = "LAKEBASE_BRANCH"
	EnvLakebaseDatabase = "LAKEBASE_DATABASE"
)

// DefaultSQLitePath is the SQLite file used when Config names no storage.
const DefaultSQLitePath = "agentserver.db"

// Config says where the sessions are stored.
type Config struct {
	// SQLitePath is the SQLite file used when DatabaseURL and Lakebase are
	// empty; empty means DefaultSQLitePath.
	SQLitePath string

	// DatabaseURL is a PostgreSQL connection string with a static password.
	DatabaseURL string

	// Lakebase is the Lakebase database to use, when any of its fields is
	// set.
	Lakebase lakebasecred.Target
	// LakebaseDatabase is the database on Lakebase; empty means
	// lakebasecred.DefaultDatabase.
	LakebaseDatabase string
	// Workspace returns the Databricks client used to find Lakebase and mint
	// its tokens; nil means databricks.NewWorkspaceClient(), which reads
	// the DATABRICKS_* variables and ~/.databrickscfg.
	Workspace func() (*databricks.WorkspaceClient, error)
	// LakebaseOptions are passed on to lakebasecred.New.
	LakebaseOptions []lakebasecred.Option
	// ConnectorOptions are passed on to connector.ForLakebase, after
	// connector.WithApplicationName("agentserver").
	ConnectorOptions []connector.Option
}

// FromEnv returns the Config that the environment variables above describe.
// getenv is usually os.Getenv.
func FromEnv(getenv func(string) string) Config {
	return Config{
		SQLitePath:  getenv(EnvSQLitePath),
		DatabaseURL: getenv(EnvDatabaseURL),
		Lakebase: lakebasecred.Target{
			Instance: getenv(EnvLakebaseInstance),
			Endpoint: getenv(EnvLakebaseEndpoint),
			Project:  getenv(EnvLakebaseProject),
			Branch:   getenv(EnvLakebaseBranch),
		},
		LakebaseDatabase: getenv(EnvLakebaseDatabase),
	}
}

// Kind names the storage a Config selects: "sqlite", "postgres" or
// "lakebase".
func (c Config) Kind() string {
	switch {
	case c.Lakebase != (lakebasecred.Target{}):
		return "lakebase"
	case c.DatabaseURL != "":
		return "postgres"
	default:
		return "sqlite"
	}
}

// Storage is an open session store.
type Storage struct {
	// Store holds the sessions; its tables exist.
	Store *bunstore.Store
	// DB is the database the Store uses.
	DB *bun.DB
	// Description says where the sessions are, without any secret.
	Description string

	src *lakebasecred.Source // the Lakebase token source; nil for other storage
}

// Open opens the storage cfg describes and creates the session tables when
// they do not exist. Close the Storage when done.
func Open(ctx context.Context, cfg Config) (*Storage, error) {
	if cfg.DatabaseURL != "" && cfg.Lakebase != (lakebasecred.Target{}) {
		return nil, errors.New("storage: both DATABASE_URL and a Lakebase target are set; unset one of them")
	}
	var (
		st  *Storage
		err error
	)
	switch cfg.Kind() {
	case "lakebase":
		st, err = openLakebase(ctx, cfg)
	case "postgres":
		st, err = openPostgres(cfg)
	default:
		st, err = openSQLite(cfg)
	}
	if err != nil {
		return nil, err
	}
	if err := st.init(ctx); err != nil {
		st.Close()
		return nil, err
	}
	return st, nil
}

func (st *Storage) init(ctx context.Context) error {
	store, err := bunstore.New(st.DB)
	if err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	if err := store.CreateTables(ctx); err != nil {
		return fmt.Errorf("storage: create the session tables in %s: %w", st.Description, err)
	}
	st.Store = store
	return nil
}

// Close closes the database, then the Lakebase token source when Open made
// one.
func (st *Storage) Close() error {
	var errs []error
	if st.DB != nil {
		errs = append(errs, st.DB.Close())
	}
	if st.src != nil {
		errs = append(errs, st.src.Close())
	}
	return errors.Join(errs...)
}

func openSQLite(cfg Config) (*Storage, error) {
	path := cfg.SQLitePath
	if path == "" {
		path = DefaultSQLitePath
	}
	db, err := sqlitedb.Open(path)
	if err != nil {
		return nil, fmt.Errorf("storage: open SQLite file %s: %w", path, err)
	}
	return &Storage{DB: db, Description: "SQLite file " + path}, nil
}

func openPostgres(cfg Config) (*Storage, error) {
	c, err := connector.New(connector.Config{DSN: cfg.DatabaseURL, ApplicationName: "agentserver"})
	if err != nil {
		return nil, fmt.Errorf("storage: DATABASE_URL: %w", err)
	}
	db := bun.NewDB(connector.OpenDB(c), pgdialect.New())
	return &Storage{DB: db, Description: "PostgreSQL " + describeConnector(c)}, nil
}

func openLakebase(ctx context.Context, cfg Config) (*Storage, error) {
	newWorkspace := cfg.Workspace
	if newWorkspace == nil {
		newWorkspace = func() (*databricks.WorkspaceClient, error) { return databricks.NewWorkspaceClient() }
	}
	w, err := newWorkspace()
	if err != nil {
		return nil, fmt.Errorf("storage: Databricks authentication (set DATABRICKS_HOST and DATABRICKS_TOKEN, or another DATABRICKS_* method): %w", err)
	}
	opts := append([]lakebasecred.Option(nil), cfg.LakebaseOptions...)
	if cfg.LakebaseDatabase != "" {
		opts = append(opts, lakebasecred.WithDatabase(cfg.LakebaseDatabase))
	}
	src, err := lakebasecred.New(ctx, w, cfg.Lakebase, opts...)
	if err != nil {
		return nil, fmt.Errorf("storage: Lakebase: %w", err)
	}
	copts := append([]connector.Option{connector.WithApplicationName("agentserver")}, cfg.ConnectorOptions...)
	c, err := connector.ForLakebase(src, copts...)
	if err != nil {
		src.Close()
		return nil, fmt.Errorf("storage: Lakebase connector: %w", err)
	}
	db := bun.NewDB(connector.OpenDB(c), pgdialect.New())
	return &Storage{
		DB:          db,
		Description: fmt.Sprintf("Lakebase %s (host %s, user %s, database %s)", describeTarget(cfg.Lakebase), src.Host(), src.User(), src.Database()),
		src:         src,
	}, nil
}

func describeTarget(t lakebasecred.Target) string {
	switch {
	case t.Instance != "":
		return "instance " + t.Instance
	case t.Endpoint != "":
		return "endpoint " + t.Endpoint
	default:
		return "project " + t.Project + " branch " + t.Branch
	}
}

// describeConnector turns "connector.Connector(host=... user=...)" into
// "host=... user=...".
func describeConnector(c *connector.Connector) string {
	s := strings.TrimPrefix(c.String(), "connector.Connector(")
	return strings.TrimSuffix(s, ")")
}
