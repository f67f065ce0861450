package connector_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/lakesession/lakesession/internal/testdb"
)

// fakeSource is a TokenSource that counts its calls. Token returns the
// current token (or err); Invalidate counts and, when next is set, replaces
// the current token with next().
type fakeSource struct {
	mu    sync.Mutex
	tok   string
	err   error
	next  func() string
	onTok func(n int64) // called with the 1-based call number, before answering

	calls         atomic.Int64
	invalidations atomic.Int64
}

func (s *fakeSource) Token(ctx context.Context) (string, error) {
	n := s.calls.Add(1)
	if s.onTok != nil {
		s.onTok(n)
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return "", s.err
	}
	return s.tok, nil
}

func (s *fakeSource) Invalidate() {
	s.invalidations.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.next != nil {
		s.tok = s.next()
	}
}

func (s *fakeSource) set(tok string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tok = tok
}

// randomToken returns a fresh token-like secret.
func randomToken(t testing.TB) string {
	t.Helper()
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return "tok" + hex.EncodeToString(b[:])
}

// server is the test PostgreSQL: its address, an admin pool on a fresh
// database, and that database's name.
type server struct {
	host     string
	port     int
	database string
	admin    *sql.DB
	rootCert string // empty when the server has no TLS certificate
}

// newServer returns the test server with a fresh database, or skips t.
func newServer(t testing.TB) *server {
	t.Helper()
	dsn := testdb.NewDatabase(t)
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	return &server{host: cfg.Host, port: int(cfg.Port), database: cfg.Database, admin: admin}
}

// tlsServer is newServer for a server with TLS on; it skips t (fails it
// under CI=true) when the server has none.
func tlsServer(t testing.TB) *server {
	t.Helper()
	s := newServer(t)
	s.rootCert = testdb.SSLRootCert(t)
	return s
}

// newRole creates a login role whose password is password, dropped when the
// test ends, and returns its name.
func (s *server) newRole(t testing.TB, password string) string {
	t.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	name := "lakesession_conn_" + hex.EncodeToString(b[:])
	s.createRole(t, name, password)
	return name
}

// createRole creates the login role name, with password unless it is
// empty, dropped when the test ends.
func (s *server) createRole(t testing.TB, name, password string) {
	t.Helper()
	q := "CREATE ROLE " + quoteIdent(name) + " LOGIN"
	if password != "" {
		q += " PASSWORD " + quoteLiteral(password)
	}
	if _, err := s.admin.Exec(q); err != nil {
		t.Fatalf("create role: %v", err)
	}
	t.Cleanup(func() {
		// Sessions of the role may still be closing.
		s.admin.Exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", name)
		// Privileges granted in the test database go first.
		if _, err := s.admin.Exec("DROP OWNED BY " + quoteIdent(name)); err != nil {
			t.Errorf("drop owned by %s: %v", name, err)
		}
		if _, err := s.admin.Exec("DROP ROLE IF EXISTS " + quoteIdent(name)); err != nil {
			t.Errorf("drop role %s: %v", name, err)
		}
	})
}

// setPassword makes password the role's password.
func (s *server) setPassword(t testing.TB, role, password string) {
	t.Helper()
	if _, err := s.admin.Exec("ALTER ROLE " + quoteIdent(role) + " PASSWORD " + quoteLiteral(password)); err != nil {
		t.Fatalf("alter role: %v", err)
	}
}

func quoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// mustNotContain fails t when text contains any of the secrets.
func mustNotContain(t testing.TB, what, text string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			t.Errorf("%s contains a secret: %s", what, text)
		}
	}
}

// errorTexts returns the ways an error is commonly printed.
func errorTexts(err error) []string {
	var out []string
	for e := err; e != nil; e = errors.Unwrap(e) {
		out = append(out, e.Error())
	}
	return append(out, fmtAll(err)...)
}
