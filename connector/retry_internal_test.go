package connector

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// What a Connect waits out, and what it does not: waiting cures an
// outage, not a refused login, a token source's error, a certificate that
// is not trusted or a name that does not exist.
func TestIsOutage(t *testing.T) {
	live := context.Background()
	ended, cancel := context.WithCancel(live)
	cancel()
	for _, tt := range []struct {
		name string
		ctx  context.Context
		err  error
		want bool
	}{
		{"refused", live, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, true},
		{"reset during login", live, fmt.Errorf("login: %w", syscall.ECONNRESET), true},
		{"end of stream during login", live, io.ErrUnexpectedEOF, true},
		{"starting up", live, &pgconn.PgError{Code: "57P03"}, true},
		{"shutting down", live, &pgconn.PgError{Code: "57P01"}, true},
		{"connection exception", live, &pgconn.PgError{Code: "08006"}, true},
		{"temporary DNS failure", live, &net.DNSError{Err: "server misbehaving", Name: "h", IsTemporary: true}, true},
		{"refused after the context ended", ended, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, false},
		{"password rejected", live, &pgconn.PgError{Code: "28P01"}, false},
		{"no such database", live, &pgconn.PgError{Code: "3D000"}, false},
		{"token source", live, &tokenError{err: errors.New("mint failed")}, false},
		{"unknown authority", live, fmt.Errorf("tls: %w", x509.UnknownAuthorityError{}), false},
		{"wrong host name", live, fmt.Errorf("tls: %w", x509.HostnameError{Host: "h"}), false},
		{"no such host", live, &net.DNSError{Err: "no such host", Name: "h", IsNotFound: true}, false},
	} {
		if got := isOutage(tt.ctx, tt.err); got != tt.want {
			t.Errorf("%s: isOutage(%v) = %v, want %v", tt.name, tt.err, got, tt.want)
		}
	}
}
