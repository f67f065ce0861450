package lakebasetest_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/lakesession/lakesession/internal/testdb"
	"github.com/lakesession/lakesession/lakebasecred"
	"github.com/lakesession/lakesession/lakebasecred/lakebasetest"
)

// newRole creates a login role with a name that needs quoting, dropped when
// the test ends.
func newRole(t *testing.T, admin *sql.DB) string {
	t.Helper()
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := "lakebasetest-" + hex.EncodeToString(b[:]) + "@example.com"
	if _, err := admin.Exec(`CREATE ROLE "` + name + `" LOGIN`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec(`DROP ROLE IF EXISTS "` + name + `"`); err != nil {
			t.Errorf("drop role: %v", err)
		}
	})
	return name
}

// login connects to the test server as user with password, over
// 127.0.0.1 (where the server checks passwords), and runs one query.
func login(t *testing.T, user, password string) error {
	t.Helper()
	dsn := testdb.AdminDSN(t)
	dsn = testdb.WithParam(t, dsn, "user", user)
	dsn = testdb.WithParam(t, dsn, "password", password)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var who string
	if err := db.QueryRowContext(ctx, "SELECT current_user").Scan(&who); err != nil {
		return err
	}
	if who != user {
		t.Errorf("logged in as %q, want %q", who, user)
	}
	return nil
}

func isAuthFailure(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "28P01" || pgErr.Code == "28000")
}

// TestAlterRoleSQLOnPostgres: a minted token becomes a real role's
// password through Mint.AlterRoleSQL; a wrong password and an expired
// token are refused.
func TestAlterRoleSQLOnPostgres(t *testing.T) {
	admin, err := sql.Open("pgx", testdb.AdminDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() }) // after the role is dropped
	role := newRole(t, admin)

	fake := newServer(t)
	fake.SetUserName(role)
	fake.OnMint(func(m lakebasetest.Mint) error {
		_, err := admin.Exec(m.AlterRoleSQL())
		return err
	})
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil)) // the expired token is warned about
	src, err := lakebasecred.New(context.Background(), fake.WorkspaceClient(), lakebasecred.Target{Instance: "inst"}, lakebasecred.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if src.User() != role {
		t.Fatalf("User() = %q, want %q", src.User(), role)
	}
	tok, err := src.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := login(t, role, tok); err != nil {
		t.Fatalf("login with the minted token: %v", err)
	}
	if err := login(t, role, tok+"x"); !isAuthFailure(err) {
		t.Fatalf("login with a wrong password: %v, want 28P01", err)
	}

	fake.SetTokenLifetime(-time.Minute) // already expired: VALID UNTIL in the past
	src.Invalidate()
	expired, err := src.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := login(t, role, expired); !isAuthFailure(err) {
		t.Fatalf("login with an expired token: %v, want an authentication failure", err)
	}
	if expired == tok {
		t.Fatal("the expired token equals the first one")
	}
}

// TestAppOnLakebase is the test of the package documentation, run as
// written there (with the test server's DSN).
func TestAppOnLakebase(t *testing.T) {
	ctx := context.Background()
	admin, err := sql.Open("pgx", testdb.AdminDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() }) // after the role is dropped
	role := newRole(t, admin)

	fake := lakebasetest.NewServer(t)
	fake.SetUserName(role)
	fake.AddInstance(lakebasetest.Instance{Name: "my-instance", ReadWriteDNS: "127.0.0.1"})
	fake.OnMint(func(m lakebasetest.Mint) error {
		_, err := admin.ExecContext(ctx, m.AlterRoleSQL())
		return err
	})

	src, err := lakebasecred.New(ctx, fake.WorkspaceClient(), lakebasecred.Target{Instance: "my-instance"})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	tok, err := src.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if src.Host() != "127.0.0.1" {
		t.Errorf("Host() = %q", src.Host())
	}
	if err := login(t, src.User(), tok); err != nil {
		t.Fatalf("login: %v", err)
	}
	if n := fake.Calls(lakebasetest.OpDatabaseCredential); n != 1 {
		t.Errorf("%d credential calls, want 1", n)
	}
}
