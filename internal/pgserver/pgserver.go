// Package pgserver runs a private PostgreSQL server for one test, which the
// test may stop, start again and reconfigure without disturbing the server
// that other packages' tests share.
//
//	srv := pgserver.Start(t)                     // initdb, a free 127.0.0.1 port, stopped at cleanup
//	db, _ := sql.Open("pgx", srv.DSN())          // superuser, sslmode=disable
//	srv.Stop(t)                                  // fast shutdown: clients see the server go
//	srv.Start(t)                                 // the same data and port again
//	srv.Exec(t, "ALTER SYSTEM SET default_transaction_read_only = on; SELECT pg_reload_conf()")
//
// The binaries are found as scripts/with-postgres.sh finds them (pg_config
// --bindir, then /usr/lib/postgresql/*/bin, then PATH). When they are
// missing, Start skips the test, and fails it under CI=true.
//
// A server starts in a fraction of a second: initdb runs once per machine
// and version into a small template (1 MB WAL segments) in /dev/shm when it
// is a memory file system with at least 1 GiB free, in the temporary
// directory otherwise (lakesession-pgserver-UID), which each server copies
// next to it; the server runs without fsync. As root, initdb and the server run as the postgres user.
// The superuser logs in without a password over TCP; any other role needs a
// password (scram-sha-256).
package pgserver

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// startTimeout bounds the wait for a server to accept connections, and
// stopTimeout the wait for it to exit.
const (
	startTimeout = 60 * time.Second
	stopTimeout  = 30 * time.Second
)

// Option changes how Start sets up a server.
type Option func(*options)

type options struct {
	tls      bool
	settings [][2]string
}

// WithTLS turns on ssl with a self-signed certificate for 127.0.0.1 and
// localhost; RootCertPath names it for the clients (sslrootcert). Clients may
// still connect without TLS.
func WithTLS() Option { return func(o *options) { o.tls = true } }

// WithSetting sets a server parameter at start (postgres -c name=value), after
// the defaults of this package, so it can override them.
func WithSetting(name, value string) Option {
	return func(o *options) { o.settings = append(o.settings, [2]string{name, value}) }
}

// Server is one private PostgreSQL server. Its methods take the calling test
// and fail it on error.
type Server struct {
	bin     string // directory of initdb and postgres
	dir     string // the server's directory: data, log, root.crt
	data    string
	logPath string
	port    int
	tls     bool
	args    []string
	cred    *syscall.Credential // the postgres user, when running as root

	mu   sync.Mutex
	proc *process // nil while stopped
}

type process struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd.Wait returned
	err    error         // cmd.Wait's error, set before exited is closed
}

// Start runs a new server on a free 127.0.0.1 port and returns it once it
// accepts connections. The server is stopped and its files removed when t's
// test ends.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	bin := findBinDir()
	if bin == "" {
		msg := "pgserver: PostgreSQL binaries not found (looked at pg_config --bindir, /usr/lib/postgresql/*/bin and PATH): install the postgresql package, or run the tests through scripts/with-postgres.sh, which installs it"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	cred, err := Credential()
	if err != nil {
		t.Fatalf("pgserver: %v", err)
	}
	tmpl, err := template(bin, cred)
	if err != nil {
		t.Fatalf("pgserver: %v", err)
	}

	dir, err := os.MkdirTemp(baseDir(), "pgserver-")
	if err != nil {
		t.Fatalf("pgserver: %v", err)
	}
	s := &Server{bin: bin, dir: dir, data: filepath.Join(dir, "data"), logPath: filepath.Join(dir, "server.log"), tls: o.tls, cred: cred}
	t.Cleanup(func() {
		s.halt(syscall.SIGQUIT) // immediate shutdown: nothing to keep
		os.RemoveAll(dir)
	})
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("pgserver: %v", err)
	}
	if err := copyTree(tmpl, s.data, cred); err != nil {
		t.Fatalf("pgserver: copy the template cluster: %v", err)
	}
	if err := s.writeFiles(); err != nil {
		t.Fatalf("pgserver: %v", err)
	}
	if err := s.chown(dir); err != nil {
		t.Fatalf("pgserver: %v", err)
	}

	s.args = []string{
		"-D", s.data,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories=" + dir,
		"-c", "max_connections=200",
		"-c", "shared_buffers=16MB",
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
		"-c", "timezone=Asia/Kolkata",
		"-c", "log_min_messages=warning",
	}
	if o.tls {
		s.args = append(s.args, "-c", "ssl=on", "-c", "ssl_cert_file=server.crt", "-c", "ssl_key_file=server.key")
	}
	for _, kv := range o.settings {
		s.args = append(s.args, "-c", kv[0]+"="+kv[1])
	}

	var lastErr error
	for range 5 {
		port, err := FreePort()
		if err != nil {
			t.Fatalf("pgserver: %v", err)
		}
		s.port = port
		if lastErr = s.start(); lastErr == nil {
			return s
		}
	}
	t.Fatalf("pgserver: %v", lastErr)
	return nil
}

// DSN returns the superuser's DSN, postgres://postgres@127.0.0.1:port/postgres?sslmode=disable.
func (s *Server) DSN() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.port)
}

// Host returns the server's host, 127.0.0.1.
func (s *Server) Host() string { return "127.0.0.1" }

// Port returns the server's port, the same across Stop and Start.
func (s *Server) Port() int { return s.port }

// Addr returns host:port.
func (s *Server) Addr() string { return net.JoinHostPort(s.Host(), strconv.Itoa(s.port)) }

// RootCertPath returns the path of the certificate that clients should trust
// (sslrootcert) when the server was started WithTLS, and "" otherwise.
func (s *Server) RootCertPath() string {
	if !s.tls {
		return ""
	}
	return filepath.Join(s.dir, "root.crt")
}

// CertPath and KeyPath return the server's certificate and private key
// (WithTLS only; "" otherwise), for a test that puts another TLS server, such
// as a pooler, in front of this one. Both are readable by the postgres user.
func (s *Server) CertPath() string {
	if !s.tls {
		return ""
	}
	return filepath.Join(s.dir, "tls.crt")
}

// KeyPath: see CertPath.
func (s *Server) KeyPath() string {
	if !s.tls {
		return ""
	}
	return filepath.Join(s.dir, "tls.key")
}

// Stop shuts the server down (fast shutdown: open sessions are ended, each
// client sees SQLSTATE 57P01 or its connection close) and waits for it to
// exit. Connections are refused until Start.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	if err := s.halt(syscall.SIGINT); err != nil {
		t.Fatalf("pgserver: stop: %v", err)
	}
}

// BeginStop begins a smart shutdown and returns at once: the server
// refuses new connections with SQLSTATE 57P03 (the database system is
// shutting down) while the open sessions go on, and exits when the last
// one ends. Start waits for that exit; Stop ends the sessions.
func (s *Server) BeginStop(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		t.Fatal("pgserver: BeginStop: the server is not running")
	}
	if err := s.proc.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatalf("pgserver: BeginStop: %v", err)
	}
}

// Start starts a stopped server again, on the same port and with the same
// data, and returns once it accepts connections. After BeginStop it first
// waits for the server to exit.
func (s *Server) Start(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	p := s.proc
	s.mu.Unlock()
	if p != nil {
		select {
		case <-p.exited:
		case <-time.After(stopTimeout):
			t.Fatalf("pgserver: Start: the server did not exit within %s of BeginStop (is a session still open?)", stopTimeout)
		}
		s.mu.Lock()
		if s.proc == p {
			s.proc = nil
		}
		s.mu.Unlock()
	}
	if err := s.start(); err != nil {
		t.Fatalf("pgserver: start again: %v", err)
	}
}

// Exec runs SQL as the superuser on the postgres database, each statement of
// sql (separated by semicolons outside quotes) on its own, so that statements
// such as ALTER SYSTEM, which refuse to run in a transaction block, can be
// given together with others.
func (s *Server) Exec(t testing.TB, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgconn.Connect(ctx, s.DSN())
	if err != nil {
		t.Fatalf("pgserver: connect: %v", err)
	}
	defer conn.Close(context.Background())
	for _, stmt := range splitStatements(sql) {
		if _, err := conn.Exec(ctx, stmt).ReadAll(); err != nil {
			t.Fatalf("pgserver: %s: %v", stmt, err)
		}
	}
}

// start runs postgres and waits until it accepts connections.
func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		return errors.New("the server is already running")
	}
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close() // the child has its own copy
	args := append(append([]string(nil), s.args...), "-c", "port="+strconv.Itoa(s.port))
	cmd := exec.Command(filepath.Join(s.bin, "postgres"), args...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.Dir = s.dir
	cmd.Env = []string{"LC_ALL=C", "PATH=/usr/bin:/bin"}
	cmd.SysProcAttr = ProcAttr(s.cred)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("run postgres: %w", err)
	}
	p := &process{cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()

	deadline := time.Now().Add(startTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn, err := pgconn.Connect(ctx, s.DSN()+"&connect_timeout=1")
		cancel()
		if err == nil {
			conn.Close(context.Background())
			s.proc = p
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("postgres exited on port %d (%v); log:\n%s", s.port, p.err, s.logTail())
		default:
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-p.exited
			return fmt.Errorf("postgres did not accept connections on port %d within %s (last: %v); log:\n%s", s.port, startTimeout, err, s.logTail())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// halt sends sig to the server and waits for it to exit (SIGKILL after
// stopTimeout). A stopped server is left alone.
func (s *Server) halt(sig syscall.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.proc
	if p == nil {
		return nil
	}
	s.proc = nil
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case <-p.exited:
		return nil
	case <-time.After(stopTimeout):
		p.cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("postgres did not exit within %s of signal %v; killed", stopTimeout, sig)
	}
}

func (s *Server) logTail() string {
	b, _ := os.ReadFile(s.logPath)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// writeFiles writes pg_hba.conf and, with TLS, the certificate files.
func (s *Server) writeFiles() error {
	hba := "local all all trust\nhost all postgres 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 scram-sha-256\n"
	if err := os.WriteFile(filepath.Join(s.data, "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		return err
	}
	if !s.tls {
		return nil
	}
	certPEM, keyPEM, err := selfSigned()
	if err != nil {
		return fmt.Errorf("make a certificate: %w", err)
	}
	for _, f := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{
		{filepath.Join(s.data, "server.crt"), certPEM, 0o600},
		{filepath.Join(s.data, "server.key"), keyPEM, 0o600},
		{filepath.Join(s.dir, "tls.crt"), certPEM, 0o644},
		{filepath.Join(s.dir, "tls.key"), keyPEM, 0o600},
		{filepath.Join(s.dir, "root.crt"), certPEM, 0o644},
	} {
		if err := os.WriteFile(f.path, f.data, f.mode); err != nil {
			return err
		}
	}
	return nil
}

// chown gives the tree at path to the server's user, when running as root.
func (s *Server) chown(path string) error {
	if s.cred == nil {
		return nil
	}
	return filepath.WalkDir(path, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, int(s.cred.Uid), int(s.cred.Gid))
	})
}

// selfSigned returns a PEM certificate for 127.0.0.1 and localhost, valid for
// two days, and its PEM private key.
func selfSigned() (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(48 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

// findBinDir returns the directory of initdb and postgres, looked for as
// scripts/with-postgres.sh does, or "" when there is none.
func findBinDir() string {
	ok := func(dir string) bool {
		for _, name := range []string{"initdb", "postgres"} {
			if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.IsDir() {
				return false
			}
		}
		return true
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		if dir := strings.TrimSpace(string(out)); ok(dir) {
			return dir
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, dir := range dirs {
		if ok(dir) {
			return dir
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if dir := filepath.Dir(p); ok(dir) {
			return dir
		}
		// initdb on PATH may be a link into the real directory.
		if real, err := filepath.EvalSymlinks(p); err == nil && ok(filepath.Dir(real)) {
			return filepath.Dir(real)
		}
	}
	return ""
}

// versionOf returns the major version in a path /usr/lib/postgresql/N/bin.
func versionOf(dir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return n
}

var (
	credOnce sync.Once
	credVal  *syscall.Credential
	credErr  error
)

// Credential returns the postgres user's credential when running as root
// (initdb, postgres and pgbouncer refuse to run as root), nil otherwise. As
// scripts/with-postgres.sh does, it creates the user when missing.
func Credential() (*syscall.Credential, error) {
	credOnce.Do(func() {
		if os.Geteuid() != 0 {
			return
		}
		u, err := user.Lookup("postgres")
		if err != nil {
			if out, err := exec.Command("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "postgres").CombinedOutput(); err != nil {
				credErr = fmt.Errorf("running as root, and the postgres user to run the server as is missing and could not be created: %v: %s", err, out)
				return
			}
			if u, err = user.Lookup("postgres"); err != nil {
				credErr = fmt.Errorf("look up the postgres user: %w", err)
				return
			}
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil {
			credErr = fmt.Errorf("the postgres user has uid %q gid %q", u.Uid, u.Gid)
			return
		}
		credVal = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}
	})
	return credVal, credErr
}

var (
	tmplMu    sync.Mutex
	tmplPaths = map[string]string{}
)

// template returns the directory of an initdb'd cluster for the binaries in
// bin, making it when missing. It is kept in the temporary directory, so
// that initdb runs once per machine and version, not once per server.
func template(bin string, cred *syscall.Credential) (string, error) {
	tmplMu.Lock()
	defer tmplMu.Unlock()
	if p, ok := tmplPaths[bin]; ok {
		return p, nil
	}
	version, err := exec.Command(filepath.Join(bin, "postgres"), "--version").Output()
	if err != nil {
		return "", fmt.Errorf("%s --version: %w", filepath.Join(bin, "postgres"), err)
	}
	sum := sha256.Sum256([]byte(bin + "\x00" + string(version)))
	// Not the user's cache directory: as root that is under /root, where
	// the postgres user that runs initdb cannot go.
	root := filepath.Join(baseDir(), fmt.Sprintf("lakesession-pgserver-%d", os.Geteuid()))
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", err
	}
	if fi, err := os.Lstat(root); err != nil {
		return "", err
	} else if st, ok := fi.Sys().(*syscall.Stat_t); !fi.IsDir() || !ok || int(st.Uid) != os.Geteuid() {
		return "", fmt.Errorf("%s is not a directory of this user: remove it", root)
	}
	final := filepath.Join(root, "template-"+hex.EncodeToString(sum[:8]))
	const marker = "lakesession-template-complete"
	if _, err := os.Stat(filepath.Join(final, marker)); err == nil {
		tmplPaths[bin] = final
		return final, nil
	}
	work, err := os.MkdirTemp(root, "build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(work)
	if err := os.Chmod(work, 0o755); err != nil {
		return "", err
	}
	if cred != nil {
		if err := os.Chown(work, int(cred.Uid), int(cred.Gid)); err != nil {
			return "", err
		}
	}
	data := filepath.Join(work, "data")
	var out []byte
	for _, locale := range []string{"C.UTF-8", "C"} {
		cmd := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale="+locale, "--no-sync", "--wal-segsize=1")
		cmd.Dir = work
		cmd.Env = []string{"LC_ALL=C", "PATH=/usr/bin:/bin"}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		if out, err = cmd.CombinedOutput(); err == nil {
			break
		}
		os.RemoveAll(data)
	}
	if err != nil {
		return "", fmt.Errorf("initdb: %v: %s", err, out)
	}
	if err := os.WriteFile(filepath.Join(data, marker), nil, 0o644); err != nil {
		return "", err
	}
	if err := os.Rename(data, final); err != nil {
		// Another test process made it first: use theirs.
		if _, serr := os.Stat(filepath.Join(final, marker)); serr != nil {
			return "", fmt.Errorf("keep the template cluster: %w", err)
		}
	}
	tmplPaths[bin] = final
	return final, nil
}

// copyTree copies the template cluster src to dst (which must not exist),
// keeping modes; as root it gives the copy to cred's user.
func copyTree(src, dst string, cred *syscall.Credential) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			if err := os.Mkdir(target, info.Mode().Perm()); err != nil {
				return err
			}
			if err := os.Chmod(target, info.Mode().Perm()); err != nil { // past the umask
				return err
			}
		case d.Type().IsRegular():
			if err := copyFile(p, target, info.Mode().Perm()); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s: not a regular file or directory", p)
		}
		if cred != nil {
			return os.Lchown(target, int(cred.Uid), int(cred.Gid))
		}
		return nil
	})
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// baseDir returns the directory for servers and their template: /dev/shm
// when it is a memory file system with room (copying a cluster there takes
// a fraction of what it takes on a busy disk), the temporary directory
// otherwise.
func baseDir() string {
	if memDirRoom("/dev/shm", 1<<30) {
		return "/dev/shm"
	}
	return os.TempDir()
}

// freePort returns a TCP port of 127.0.0.1 that was free a moment ago.
// FreePort returns a TCP port on 127.0.0.1 that nothing listens on now.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// splitStatements splits sql at the semicolons that are outside single
// quotes, double quotes and -- comments, dropping empty statements.
func splitStatements(sql string) []string {
	var stmts []string
	var b strings.Builder
	flush := func() {
		if s := strings.TrimSpace(b.String()); s != "" {
			stmts = append(stmts, s)
		}
		b.Reset()
	}
	var quote byte
	for i := 0; i < len(sql); i++ {
		c := sql[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '-' && i+1 < len(sql) && sql[i+1] == '-':
			for i < len(sql) && sql[i] != '\n' {
				b.WriteByte(sql[i])
				i++
			}
			if i == len(sql) {
				continue
			}
			c = sql[i]
		case c == ';':
			flush()
			continue
		}
		b.WriteByte(c)
	}
	flush()
	return stmts
}
