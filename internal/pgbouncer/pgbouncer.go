// Package pgbouncer runs a private PgBouncer for one test, in transaction
// mode on a free 127.0.0.1 port, in front of a PostgreSQL server (such as
// one of package pgserver).
//
//	srv := pgserver.Start(t, pgserver.WithTLS())
//	b := pgbouncer.Start(t, srv.Host(), srv.Port(), pgbouncer.WithClientTLS(srv.CertPath(), srv.KeyPath()))
//	// connect to b.Host():b.Port() as any role with a password, any database
//
// Clients log in with SCRAM, checked against the role's password on the
// server (auth_query on pg_shadow, as the server's superuser postgres, who
// must be able to log in without a password); PgBouncer then logs in to the
// server with the same SCRAM keys. The binary is looked for on PATH and in
// /usr/sbin; scripts/with-postgres.sh installs the Debian pgbouncer package
// when it is missing. Without it Start skips the test, and fails it under
// CI=true. As root, PgBouncer (which refuses root) runs as the postgres
// user.
package pgbouncer

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lakesession/lakesession/internal/pgserver"
)

const (
	startTimeout = 30 * time.Second
	stopTimeout  = 10 * time.Second
)

// Option changes how Start sets PgBouncer up.
type Option func(*options)

type options struct {
	certFile, keyFile string
	poolSize          int
	settings          [][2]string
}

// WithClientTLS makes PgBouncer offer TLS to its clients with this
// certificate and key (PEM files); clients may still connect without TLS.
func WithClientTLS(certFile, keyFile string) Option {
	return func(o *options) { o.certFile, o.keyFile = certFile, keyFile }
}

// WithPoolSize sets default_pool_size, the server connections per user and
// database (default 10).
func WithPoolSize(n int) Option { return func(o *options) { o.poolSize = n } }

// WithSetting adds a setting to the [pgbouncer] section, after the
// defaults of this package.
func WithSetting(name, value string) Option {
	return func(o *options) { o.settings = append(o.settings, [2]string{name, value}) }
}

// Bouncer is one running PgBouncer.
type Bouncer struct {
	port    int
	dir     string
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{}
	stop    sync.Once
}

// Bin returns the path of the pgbouncer binary, or "" when there is none.
func Bin() string {
	if p, err := exec.LookPath("pgbouncer"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/pgbouncer", "/usr/local/sbin/pgbouncer", "/usr/local/bin/pgbouncer"} {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	return ""
}

// Start runs PgBouncer in transaction mode on a free 127.0.0.1 port, in
// front of the PostgreSQL server at host:port (without TLS to it), and
// returns once it accepts connections. It is stopped when t's test ends.
func Start(t testing.TB, host string, port int, opts ...Option) *Bouncer {
	t.Helper()
	o := options{poolSize: 10}
	for _, opt := range opts {
		opt(&o)
	}
	bin := Bin()
	if bin == "" {
		msg := "pgbouncer: the pgbouncer binary is not installed (looked on PATH and in /usr/sbin): install the pgbouncer package, or run the tests through scripts/with-postgres.sh, which installs it"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	cred, err := pgserver.Credential()
	if err != nil {
		t.Fatalf("pgbouncer: %v", err)
	}
	dir, err := os.MkdirTemp("", "pgbouncer-")
	if err != nil {
		t.Fatalf("pgbouncer: %v", err)
	}
	b := &Bouncer{dir: dir, logPath: filepath.Join(dir, "pgbouncer.log")}
	t.Cleanup(func() {
		b.halt()
		os.RemoveAll(dir)
	})
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("pgbouncer: %v", err)
	}
	files := map[string][]byte{
		"userlist.txt": []byte(`"postgres" ""` + "\n"),
	}
	if o.certFile != "" {
		for name, src := range map[string]string{"client.crt": o.certFile, "client.key": o.keyFile} {
			data, err := os.ReadFile(src)
			if err != nil {
				t.Fatalf("pgbouncer: read the client TLS files: %v", err)
			}
			files[name] = data
		}
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatalf("pgbouncer: %v", err)
		}
	}

	var lastErr error
	for range 5 {
		lport, err := pgserver.FreePort()
		if err != nil {
			t.Fatalf("pgbouncer: %v", err)
		}
		if err := b.writeConfig(o, host, port, lport); err != nil {
			t.Fatalf("pgbouncer: %v", err)
		}
		if cred != nil {
			for _, name := range []string{".", "pgbouncer.ini", "userlist.txt", "client.crt", "client.key"} {
				p := filepath.Join(dir, name)
				if _, err := os.Stat(p); err == nil {
					if err := os.Chown(p, int(cred.Uid), int(cred.Gid)); err != nil {
						t.Fatalf("pgbouncer: %v", err)
					}
				}
			}
		}
		b.port = lport
		if lastErr = b.run(bin, cred); lastErr == nil {
			return b
		}
	}
	t.Fatalf("pgbouncer: %v", lastErr)
	return nil
}

// Host returns PgBouncer's host, 127.0.0.1.
func (b *Bouncer) Host() string { return "127.0.0.1" }

// Port returns PgBouncer's port.
func (b *Bouncer) Port() int { return b.port }

// Addr returns host:port.
func (b *Bouncer) Addr() string { return net.JoinHostPort(b.Host(), strconv.Itoa(b.port)) }

func (b *Bouncer) writeConfig(o options, host string, port, lport int) error {
	var c strings.Builder
	fmt.Fprintf(&c, "[databases]\n* = host=%s port=%d\n\n[pgbouncer]\n", host, port)
	settings := [][2]string{
		{"listen_addr", "127.0.0.1"},
		{"listen_port", strconv.Itoa(lport)},
		{"unix_socket_dir", ""},
		{"logfile", b.logPath},
		{"pidfile", filepath.Join(b.dir, "pgbouncer.pid")},
		{"auth_type", "scram-sha-256"},
		{"auth_file", filepath.Join(b.dir, "userlist.txt")},
		{"auth_user", "postgres"},
		{"auth_query", "SELECT usename, passwd FROM pg_shadow WHERE usename = $1"},
		{"pool_mode", "transaction"},
		{"default_pool_size", strconv.Itoa(o.poolSize)},
		{"max_client_conn", "500"},
		{"server_tls_sslmode", "disable"},
		{"ignore_startup_parameters", "extra_float_digits"},
		{"server_login_retry", "1"},
	}
	if o.certFile != "" {
		settings = append(settings,
			[2]string{"client_tls_sslmode", "allow"},
			[2]string{"client_tls_cert_file", filepath.Join(b.dir, "client.crt")},
			[2]string{"client_tls_key_file", filepath.Join(b.dir, "client.key")},
		)
	}
	settings = append(settings, o.settings...)
	for _, kv := range settings {
		fmt.Fprintf(&c, "%s = %s\n", kv[0], kv[1])
	}
	return os.WriteFile(filepath.Join(b.dir, "pgbouncer.ini"), []byte(c.String()), 0o600)
}

func (b *Bouncer) run(bin string, cred *syscall.Credential) error {
	cmd := exec.Command(bin, filepath.Join(b.dir, "pgbouncer.ini"))
	cmd.Dir = b.dir
	cmd.SysProcAttr = pgserver.ProcAttr(cred)
	out, err := os.OpenFile(filepath.Join(b.dir, "stderr.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("run %s: %w", bin, err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	deadline := time.Now().Add(startTimeout)
	for {
		c, err := net.DialTimeout("tcp", b.Addr(), time.Second)
		if err == nil {
			c.Close()
			b.cmd, b.exited = cmd, exited
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("pgbouncer exited on port %d (%v); log:\n%s", b.port, waitErr, b.logTail())
		default:
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-exited
			return fmt.Errorf("pgbouncer did not listen on port %d within %s; log:\n%s", b.port, startTimeout, b.logTail())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// halt stops PgBouncer at once (SIGTERM: immediate shutdown), SIGKILL
// after stopTimeout.
func (b *Bouncer) halt() {
	b.stop.Do(func() {
		if b.cmd == nil {
			return
		}
		if err := b.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			b.cmd.Process.Kill()
		}
		select {
		case <-b.exited:
		case <-time.After(stopTimeout):
			b.cmd.Process.Kill()
			<-b.exited
		}
	})
}

func (b *Bouncer) logTail() string {
	var all []byte
	for _, name := range []string{"stderr.log", "pgbouncer.log"} {
		data, _ := os.ReadFile(filepath.Join(b.dir, name))
		all = append(all, data...)
	}
	if len(all) > 4000 {
		all = all[len(all)-4000:]
	}
	return string(all)
}
