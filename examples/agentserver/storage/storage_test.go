package storage_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/databricks/databricks-sdk-go"

	"github.com/lakesession/lakesession/examples/agentserver/storage"
	"github.com/lakesession/lakesession/examples/internal/locallakebase"
	"github.com/lakesession/lakesession/internal/testdb"
	"github.com/lakesession/lakesession/lakebasecred"
	"github.com/lakesession/lakesession/lakebasecred/lakebasetest"
)

// roundTrip stores two items in a session and reads them back.
func roundTrip(t *testing.T, st *storage.Storage) {
	t.Helper()
	ctx := context.Background()
	sess := st.Store.Session("storage-test")
	items := []json.RawMessage{
		json.RawMessage(`{"role":"user","content":"Hello I live in SF!"}`),
		json.RawMessage(`{"role":"assistant","content":"Noted."}`),
	}
	if err := sess.AddItems(ctx, items); err != nil {
		t.Fatal(err)
	}
	got, err := sess.GetItems(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || string(got[0]) != string(items[0]) || string(got[1]) != string(items[1]) {
		t.Fatalf("read back %s", got)
	}
}

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestFromEnv(t *testing.T) {
	cfg := storage.FromEnv(env(map[string]string{
		"SQLITE_PATH":            "a.db",
		"DATABASE_URL":           "postgres://x",
		"LAKEBASE_INSTANCE_NAME": "i",
		"LAKEBASE_ENDPOINT":      "projects/p/branches/b/endpoints/e",
		"LAKEBASE_PROJECT":       "p",
		"LAKEBASE_BRANCH":        "b",
		"LAKEBASE_DATABASE":      "d",
	}))
	want := storage.Config{
		SQLitePath:       "a.db",
		DatabaseURL:      "postgres://x",
		Lakebase:         lakebasecred.Target{Instance: "i", Endpoint: "projects/p/branches/b/endpoints/e", Project: "p", Branch: "b"},
		LakebaseDatabase: "d",
	}
	if cfg.SQLitePath != want.SQLitePath || cfg.DatabaseURL != want.DatabaseURL || cfg.Lakebase != want.Lakebase || cfg.LakebaseDatabase != want.LakebaseDatabase {
		t.Errorf("FromEnv = %+v, want %+v", cfg, want)
	}
	for _, tt := range []struct {
		vars map[string]string
		kind string
	}{
		{nil, "sqlite"},
		{map[string]string{"SQLITE_PATH": "x.db"}, "sqlite"},
		{map[string]string{"DATABASE_URL": "postgres://x"}, "postgres"},
		{map[string]string{"LAKEBASE_INSTANCE_NAME": "i"}, "lakebase"},
		{map[string]string{"LAKEBASE_ENDPOINT": "e"}, "lakebase"},
		{map[string]string{"LAKEBASE_PROJECT": "p", "LAKEBASE_BRANCH": "b"}, "lakebase"},
	} {
		if got := storage.FromEnv(env(tt.vars)).Kind(); got != tt.kind {
			t.Errorf("%v: kind %s, want %s", tt.vars, got, tt.kind)
		}
	}
}

func TestOpenSQLite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sessions.db")
	st, err := storage.Open(context.Background(), storage.Config{SQLitePath: path})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if !strings.Contains(st.Description, path) {
		t.Errorf("description %q does not name the file", st.Description)
	}
	roundTrip(t, st)
}

func TestOpenPostgres(t *testing.T) {
	// The test server lets the superuser in without a password; one is set
	// all the same to check that it is shown nowhere.
	dsn := testdb.WithParam(t, testdb.NewDatabase(t), "password", "pw-must-not-show")
	st, err := storage.Open(context.Background(), storage.Config{DatabaseURL: dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if !strings.HasPrefix(st.Description, "PostgreSQL ") || strings.Contains(st.Description, "pw-must-not-show") {
		t.Errorf("description %q", st.Description)
	}
	roundTrip(t, st)

	_, err = storage.Open(context.Background(), storage.Config{DatabaseURL: "postgres://u:pw-must-not-show@127.0.0.1:1/x?sslmode=bogus"})
	if err == nil || strings.Contains(err.Error(), "pw-must-not-show") {
		t.Errorf("a bad DATABASE_URL: %v", err)
	}
}

func TestOpenLakebase(t *testing.T) {
	lb := locallakebase.Setup(t)
	ctx := context.Background()
	st, err := storage.Open(ctx, storage.Config{
		Lakebase:         lakebasecred.Target{Instance: locallakebase.InstanceName},
		LakebaseDatabase: lb.Database,
		Workspace:        func() (*databricks.WorkspaceClient, error) { return lb.Fake.WorkspaceClient(), nil },
		ConnectorOptions: lb.ConnectorOptions,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	roundTrip(t, st)

	mints := lb.Fake.Mints()
	if len(mints) == 0 {
		t.Fatal("no token was minted")
	}
	for _, m := range mints {
		if strings.Contains(st.Description, m.Token) {
			t.Errorf("description %q shows a token", st.Description)
		}
	}
	for _, part := range []string{"instance " + locallakebase.InstanceName, "host 127.0.0.1", "user " + lb.Role, "database " + lb.Database} {
		if !strings.Contains(st.Description, part) {
			t.Errorf("description %q does not say %q", st.Description, part)
		}
	}
	// The session tables were made by the Lakebase role, logged in with a token.
	var owner string
	if err := st.DB.QueryRowContext(ctx, "SELECT tableowner FROM pg_tables WHERE tablename = 'agent_messages'").Scan(&owner); err != nil {
		t.Fatal(err)
	}
	if owner != lb.Role {
		t.Errorf("agent_messages is owned by %q, want the Lakebase role %q", owner, lb.Role)
	}
}

// TestOpenLakebaseFromEnvironment runs the path the agent server takes:
// the Databricks client from the SDK's DATABRICKS_* variables, and the
// instance given by its hostname, as LAKEBASE_INSTANCE_NAME may be.
func TestOpenLakebaseFromEnvironment(t *testing.T) {
	lb := locallakebase.Setup(t)
	t.Setenv("DATABRICKS_HOST", lb.Fake.URL())
	t.Setenv("DATABRICKS_TOKEN", lakebasetest.PAT)
	t.Setenv("DATABRICKS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	cfg := storage.FromEnv(env(map[string]string{
		"LAKEBASE_INSTANCE_NAME": "127.0.0.1",
		"LAKEBASE_DATABASE":      lb.Database,
	}))
	cfg.ConnectorOptions = lb.ConnectorOptions
	st, err := storage.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	roundTrip(t, st)
	if lb.Fake.MintCount() == 0 {
		t.Error("no token was minted")
	}
}

func TestOpenConflicts(t *testing.T) {
	ctx := context.Background()
	_, err := storage.Open(ctx, storage.Config{DatabaseURL: "postgres://x", Lakebase: lakebasecred.Target{Instance: "i"}})
	if err == nil || !strings.Contains(err.Error(), "DATABASE_URL") {
		t.Errorf("DATABASE_URL and Lakebase both set: %v", err)
	}

	fake := lakebasetest.NewServer(t)
	_, err = storage.Open(ctx, storage.Config{
		Lakebase:  lakebasecred.Target{Project: "p"},
		Workspace: func() (*databricks.WorkspaceClient, error) { return fake.WorkspaceClient(), nil },
	})
	var ce *lakebasecred.ConfigError
	if !errors.As(err, &ce) {
		t.Errorf("a project without a branch: %v, want a *lakebasecred.ConfigError", err)
	}

	_, err = storage.Open(ctx, storage.Config{
		Lakebase:  lakebasecred.Target{Instance: "i"},
		Workspace: func() (*databricks.WorkspaceClient, error) { return nil, errors.New("no credentials") },
	})
	if err == nil || !strings.Contains(err.Error(), "DATABRICKS_HOST") {
		t.Errorf("no Databricks credentials: %v", err)
	}
}
