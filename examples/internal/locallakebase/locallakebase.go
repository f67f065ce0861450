package locallakebase

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"testing"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver

	"github.com/lakesession/lakesession/connector"
	"github.com/lakesession/lakesession/internal/testdb"
	"github.com/lakesession/lakesession/lakebasecred/lakebasetest"
)

// InstanceName is the name of the fake's provisioned instance.
const InstanceName = "demo-instance"

// Env is a Lakebase stand-in.
type Env struct {
	// Fake is the control plane; its WorkspaceClient is the one to use.
	Fake *lakebasetest.Server
	// Role is the user the tokens log in as (the fake's current user).
	Role string
	// Database is an empty database owned by Role, dropped when the test
	// ends.
	Database string
	// Admin is a superuser pool on the server.
	Admin *sql.DB
	// Port is the local server's port.
	Port int
	// ConnectorOptions are the settings that differ from a real Lakebase:
	// the local server's port, and its self-signed certificate, checked
	// with verify-full.
	ConnectorOptions []connector.Option
}

// Setup makes the stand-in. It skips t (fails it under CI=true) when no test
// PostgreSQL with TLS is available; see package internal/testdb.
func Setup(t testing.TB) *Env {
	t.Helper()
	ctx := context.Background()
	adminDSN := testdb.AdminDSN(t)
	rootCert := testdb.SSLRootCert(t)
	pc, err := pgx.ParseConfig(adminDSN)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := sql.Open("pgx", adminDSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })

	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	role := "agent-" + hex.EncodeToString(b[:]) + "@example.com"
	if _, err := admin.ExecContext(ctx, "CREATE ROLE "+pgx.Identifier{role}.Sanitize()+" LOGIN"); err != nil {
		t.Fatalf("create role: %v", err)
	}
	// Registered before the database's cleanup, so it runs after the
	// database is dropped.
	t.Cleanup(func() {
		if _, err := admin.ExecContext(context.Background(), "DROP ROLE IF EXISTS "+pgx.Identifier{role}.Sanitize()); err != nil {
			t.Errorf("drop role: %v", err)
		}
	})
	dbc, err := pgx.ParseConfig(testdb.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.ExecContext(ctx, "ALTER DATABASE "+pgx.Identifier{dbc.Database}.Sanitize()+" OWNER TO "+pgx.Identifier{role}.Sanitize()); err != nil {
		t.Fatalf("give the database to the role: %v", err)
	}

	fake := lakebasetest.NewServer(t)
	fake.SetUserName(role)
	fake.AddInstance(lakebasetest.Instance{Name: InstanceName, ReadWriteDNS: "127.0.0.1"})
	fake.OnMint(func(m lakebasetest.Mint) error {
		_, err := admin.ExecContext(context.Background(), m.AlterRoleSQL())
		return err
	})
	return &Env{
		Fake:     fake,
		Role:     role,
		Database: dbc.Database,
		Admin:    admin,
		Port:     int(pc.Port),
		ConnectorOptions: []connector.Option{
			connector.WithPort(int(pc.Port)),
			connector.WithSSLMode("verify-full"),
			connector.WithSSLRootCert(rootCert),
		},
	}
}
