package connector

import (
	"crypto/tls"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

const (
	// DefaultPort is the port used when Config.Port is 0.
	DefaultPort = 5432
	// DefaultSSLMode is the sslmode used when Config.SSLMode and
	// Config.TLSConfig are both empty: TLS, with the server's certificate
	// checked against Config.SSLRootCert (the system roots when empty) and
	// its host name.
	DefaultSSLMode = "verify-full"
	// DefaultConnectTimeout bounds each connection attempt (token, dial, TLS
	// handshake and login) when Config.ConnectTimeout is 0.
	DefaultConnectTimeout = 15 * time.Second
	// DefaultMaxConnectWait is how long Connect waits out an outage (the
	// server refusing or dropping connections, or starting up) when
	// Config.MaxConnectWait is 0.
	DefaultMaxConnectWait = 30 * time.Second
)

// Config says where and as whom to connect, and with which credentials.
//
// There are two ways to fill it:
//
//   - Fields: Host, User and Database (Port defaults to 5432), with either
//     Tokens (a TokenSource, whose token is the password of every new
//     connection) or Password (a static password). Nothing else is read:
//     the PG* environment variables and ~/.pgpass are ignored.
//   - DSN: a PostgreSQL connection string, URL or keyword/value, parsed as
//     libpq does (PG* environment variables fill what it leaves out), with
//     a static password in it or none. Host, Port, User, Database, Password,
//     SSLMode and SSLRootCert must then be empty, and Tokens too.
//
// Schema, ApplicationName, ConnectTimeout, MaxConnectWait, QueryExecMode,
// ConnMaxLifetime, TLSConfig, TracerProvider, MeterProvider and QueryTracer
// apply to both.
//
// TLS is required whenever a token is the password: SSLMode must be require,
// verify-ca or verify-full (empty means verify-full), or TLSConfig set. A
// static password may go without TLS (SSLMode disable, allow or prefer), for a
// local PostgreSQL.
//
// Config's String and GoString methods never show Password or DSN.
type Config struct {
	// Host is the server's host name or IP address (one host).
	Host string
	// Port is the server's port; 0 means 5432.
	Port int
	// User is the role to log in as.
	User string
	// Database is the database to connect to (on Lakebase:
	// databricks_postgres).
	Database string

	// Tokens hands out the password of every new connection. Set it or
	// Password, not both.
	Tokens TokenSource
	// Password is a static password. Set it or Tokens, not both.
	Password string

	// DSN is a complete connection string for a static password, instead of
	// the fields above: "postgres://user:password@localhost:5432/app?sslmode=disable"
	// or "host=localhost user=app password=secret dbname=app sslmode=disable".
	DSN string

	// SSLMode is disable, allow, prefer, require, verify-ca or verify-full;
	// empty means verify-full (or TLSConfig, when set). With Tokens only
	// require, verify-ca and verify-full are accepted.
	SSLMode string
	// SSLRootCert is the path of a PEM file with the certificates that sign
	// the server's certificate, or "system" for the system roots (the
	// default when empty).
	SSLRootCert string
	// TLSConfig, when set, is the TLS configuration of every connection,
	// instead of SSLMode and SSLRootCert (which must then be empty). It is
	// cloned; an empty ServerName is set to the host.
	TLSConfig *tls.Config

	// Schema, when set, makes every new connection's search_path that
	// schema, then public. It must be a plain identifier: letters, digits,
	// underscores and dollar signs, starting with a letter or an underscore,
	// at most 63 bytes. It is used as a quoted identifier, so its case is
	// kept.
	Schema string
	// ApplicationName is the application_name of every new connection, shown
	// in pg_stat_activity.
	ApplicationName string
	// ConnectTimeout bounds each connection attempt: the wait for a token,
	// the dial, the TLS handshake and the login. 0 means
	// DefaultConnectTimeout (or the DSN's connect_timeout, when it has one).
	ConnectTimeout time.Duration
	// MaxConnectWait is how long Connect waits out an outage: while the
	// server refuses connections, drops them during the login or answers
	// that it is starting up (SQLSTATE 57P03), Connect tries again with
	// backoff until the caller's context ends or this much time has passed
	// since it was called. 0 means DefaultMaxConnectWait (30 s); a negative
	// value turns the waiting off, so that Connect makes one attempt (and,
	// with Tokens, one more after a rejected token).
	MaxConnectWait time.Duration
	// QueryExecMode is the pgx query exec mode of every connection; the zero
	// value keeps pgx's default, pgx.QueryExecModeCacheStatement (or the
	// DSN's default_query_exec_mode). A transaction pooler such as PgBouncer
	// in transaction mode needs pgx.QueryExecModeExec (or PgBouncer 1.21 or
	// later with max_prepared_statements set), since the statements pgx
	// prepares on one server connection are not there on the next. Avoid
	// pgx.QueryExecModeSimpleProtocol: with it, a statement whose
	// connection broke after it was sent can be run twice (see the package
	// doc, # Transaction poolers).
	QueryExecMode pgx.QueryExecMode
	// ConnMaxLifetime is how long a connection may live: each connection is
	// retired at a random moment in the last tenth of it (after 40.5 to 45
	// minutes by default), so that connections opened together are not all
	// replaced at once. 0 means DefaultConnMaxLifetime; a negative value
	// keeps connections regardless of age. OpenDB also sets it as the
	// pool's SetConnMaxLifetime, the upper bound.
	ConnMaxLifetime time.Duration

	// TracerProvider receives the span of each Connect
	// (lakesession.connect); nil means otel.GetTracerProvider(), as it is
	// when New runs (the global provider forwards to an SDK installed
	// later). See the package doc, # Telemetry.
	TracerProvider trace.TracerProvider
	// MeterProvider receives the Connector's metrics
	// (lakesession.connect.duration, lakesession.connect.attempts,
	// lakesession.connect.auth_rejected); nil means
	// otel.GetMeterProvider(), as it is when New runs.
	MeterProvider metric.MeterProvider
	// QueryTracer, when set, is the pgx tracer of every connection
	// (pgx.ConnConfig.Tracer): it sees each statement, with the context of
	// the call that runs it, so a tracer such as otelpgx adds a span per
	// statement under the caller's spans. When it also implements
	// pgx.ConnectTracer, pgx.PrepareTracer, pgx.BatchTracer or
	// pgx.CopyFromTracer, pgx calls those methods too; combine several
	// tracers with pgx's multitracer package. It sees the statements'
	// arguments, which hold the items' content, and a ConnectTracer sees
	// the connection's configuration, whose Password is the token: record
	// neither.
	QueryTracer pgx.QueryTracer

	// pooled is set by WithPooledHost, for ForLakebase.
	pooled bool
	// noTelemetry builds a Connector without span or metrics (tests).
	noTelemetry bool
}

// ConfigError reports every problem New found in a Config. Retrying cannot
// help: change the configuration as each problem says.
type ConfigError struct {
	// Problems holds one sentence per problem, each saying what to set.
	Problems []string
}

func (e *ConfigError) Error() string {
	if len(e.Problems) == 1 {
		return "connector: invalid configuration: " + e.Problems[0]
	}
	return fmt.Sprintf("connector: invalid configuration (%d problems): %s",
		len(e.Problems), strings.Join(e.Problems, "; "))
}

type problems []string

func (p *problems) add(format string, args ...any) {
	*p = append(*p, fmt.Sprintf(format, args...))
}

// String shows the Config with Password and DSN redacted and only the type
// of Tokens.
func (c Config) String() string {
	var b strings.Builder
	b.WriteString("connector.Config{")
	field := func(name, value string) {
		if b.Len() > len("connector.Config{") {
			b.WriteByte(' ')
		}
		b.WriteString(name)
		b.WriteByte(':')
		b.WriteString(value)
	}
	secret := func(s string) string {
		if s == "" {
			return `""`
		}
		return "[redacted]"
	}
	field("Host", strconv.Quote(c.Host))
	field("Port", strconv.Itoa(c.Port))
	field("User", strconv.Quote(c.User))
	field("Database", strconv.Quote(c.Database))
	if c.Tokens == nil {
		field("Tokens", "<nil>")
	} else {
		field("Tokens", fmt.Sprintf("%T", c.Tokens))
	}
	field("Password", secret(c.Password))
	field("DSN", secret(c.DSN))
	field("SSLMode", strconv.Quote(c.SSLMode))
	field("SSLRootCert", strconv.Quote(c.SSLRootCert))
	if c.TLSConfig == nil {
		field("TLSConfig", "<nil>")
	} else {
		field("TLSConfig", "set")
	}
	field("Schema", strconv.Quote(c.Schema))
	field("ApplicationName", strconv.Quote(c.ApplicationName))
	field("ConnectTimeout", c.ConnectTimeout.String())
	field("MaxConnectWait", c.MaxConnectWait.String())
	if name := queryExecModeName(c.QueryExecMode); name != "" {
		field("QueryExecMode", name)
	} else {
		field("QueryExecMode", strconv.Itoa(int(c.QueryExecMode)))
	}
	field("ConnMaxLifetime", c.ConnMaxLifetime.String())
	typeOf := func(v any) string {
		if v == nil {
			return "<nil>"
		}
		return fmt.Sprintf("%T", v)
	}
	field("TracerProvider", typeOf(c.TracerProvider))
	field("MeterProvider", typeOf(c.MeterProvider))
	field("QueryTracer", typeOf(c.QueryTracer))
	b.WriteByte('}')
	return b.String()
}

// GoString is String, so that %#v shows no secret either.
func (c Config) GoString() string { return c.String() }

// resolve validates a private copy of c and builds the pgx configuration.
func (c Config) resolve() (*resolved, error) {
	if c.TLSConfig != nil {
		c.TLSConfig = c.TLSConfig.Clone()
	}
	var p problems
	c.checkCommon(&p)
	var base *pgx.ConnConfig
	var tlsDesc string
	if c.DSN != "" {
		base, tlsDesc = c.fromDSN(&p)
	} else {
		base, tlsDesc = c.fromFields(&p)
	}
	if len(p) > 0 {
		return nil, &ConfigError{Problems: p}
	}

	if c.TLSConfig != nil {
		setTLS(base, c.TLSConfig)
		tlsDesc = "tls=custom"
	}
	if c.Tokens != nil && !tlsOnly(base) {
		// The field checks already refuse every sslmode that allows
		// plaintext; this is the last line, on what pgx will really do.
		p.add("a token is the password but the connection to %q would not always use TLS (a Unix socket has none): connect over TCP with SSLMode require, verify-ca or verify-full", base.Host)
		return nil, &ConfigError{Problems: p}
	}

	timeout := c.ConnectTimeout
	if timeout == 0 {
		timeout = DefaultConnectTimeout
		if base.ConnectTimeout > 0 {
			timeout = base.ConnectTimeout
		}
	}
	if c.QueryExecMode != 0 {
		base.DefaultQueryExecMode = c.QueryExecMode
	}
	if c.QueryTracer != nil {
		base.Tracer = c.QueryTracer
	}
	wait := c.MaxConnectWait
	if wait == 0 {
		wait = DefaultMaxConnectWait
	}
	lifetime := c.ConnMaxLifetime
	if lifetime == 0 {
		lifetime = DefaultConnMaxLifetime
	}

	cred := "none"
	switch {
	case c.Tokens != nil:
		cred = fmt.Sprintf("token source %T", c.Tokens)
	case base.Password != "":
		cred = "static"
	}
	desc := fmt.Sprintf("host=%s port=%d user=%s database=%s %s password=%s",
		base.Host, base.Port, base.User, base.Database, tlsDesc, cred)
	if c.Schema != "" {
		desc += " schema=" + c.Schema
	}
	if c.QueryExecMode != 0 {
		desc += " query_exec_mode=" + queryExecModeName(c.QueryExecMode)
	}
	var tel *telemetry
	if !c.noTelemetry {
		tel = newTelemetry(c.TracerProvider, c.MeterProvider, base.Host, int(base.Port), base.Database)
	}
	return newResolved(base, settings{
		tokens:   c.Tokens,
		timeout:  timeout,
		maxWait:  wait,
		lifetime: lifetime,
		desc:     desc,
		tel:      tel,
	}), nil
}

// checkCommon checks the settings that both ways of filling Config share.
func (c *Config) checkCommon(p *problems) {
	if c.Schema != "" && !validIdentifier(c.Schema) {
		p.add("Schema %q is not a plain identifier: use 1 to 63 letters, digits, underscores or dollar signs, starting with a letter or an underscore", c.Schema)
	}
	if strings.IndexByte(c.ApplicationName, 0) >= 0 {
		p.add("ApplicationName contains a NUL byte: remove it")
	}
	if c.ConnectTimeout < 0 {
		p.add("ConnectTimeout is negative (%s): set a positive duration, or 0 for %s", c.ConnectTimeout, DefaultConnectTimeout)
	}
	if c.QueryExecMode != 0 && queryExecModeName(c.QueryExecMode) == "" {
		p.add("QueryExecMode %d is not a pgx query exec mode: use one of the pgx.QueryExecMode constants (pgx.QueryExecModeExec for a transaction pooler), or 0 for pgx's default", int(c.QueryExecMode))
	}
	if c.TLSConfig != nil {
		if c.SSLMode != "" {
			p.add("SSLMode (%q) and TLSConfig are both set: leave SSLMode empty, TLSConfig decides how the server is verified", c.SSLMode)
		}
		if c.SSLRootCert != "" {
			p.add("SSLRootCert and TLSConfig are both set: put the root certificates in TLSConfig.RootCAs and leave SSLRootCert empty")
		}
	}
}

// fromFields builds the pgx configuration from Host, Port, User, Database
// and the TLS fields. Every setting that the PG* environment variables,
// ~/.pgpass or ~/.postgresql could supply is given explicitly, so that none
// of them is read.
func (c *Config) fromFields(p *problems) (*pgx.ConnConfig, string) {
	n := len(*p)
	switch {
	case c.Host == "":
		p.add("Host is empty: set Config.Host to the server's host name or IP address, or set Config.DSN")
	case strings.ContainsAny(c.Host, ",\x00"):
		p.add("Host %q is not one host name: set one host (several hosts need Config.DSN and a static password)", c.Host)
	}
	port := c.Port
	if port == 0 {
		port = DefaultPort
	}
	if port < 1 || port > 65535 {
		p.add("Port %d is out of range: set Config.Port between 1 and 65535, or 0 for %d", c.Port, DefaultPort)
	}
	switch {
	case c.User == "":
		p.add("User is empty: set Config.User to the role to log in as")
	case strings.IndexByte(c.User, 0) >= 0:
		p.add("User contains a NUL byte: remove it")
	}
	switch {
	case c.Database == "":
		p.add("Database is empty: set Config.Database (on Lakebase it is databricks_postgres)")
	case strings.IndexByte(c.Database, 0) >= 0:
		p.add("Database contains a NUL byte: remove it")
	}
	switch {
	case c.Tokens != nil && c.Password != "":
		p.add("Tokens and Password are both set: set only one of them")
	case c.Tokens == nil && c.Password == "":
		p.add("no credentials: set Config.Tokens to a token source, or Config.Password to a static password (a server that needs none can be reached with Config.DSN)")
	}
	mode := c.SSLMode
	if mode == "" && c.TLSConfig == nil {
		mode = DefaultSSLMode
	}
	switch mode {
	case "", "require", "verify-ca", "verify-full":
	case "disable", "allow", "prefer":
		if c.Tokens != nil {
			p.add("SSLMode %q can send the token without TLS: with Config.Tokens set SSLMode to require, verify-ca or verify-full (empty means %s)", mode, DefaultSSLMode)
		}
	default:
		p.add("SSLMode %q is not an sslmode: use require, verify-ca or verify-full (or, with a static password only, disable, allow or prefer)", mode)
	}
	if strings.IndexByte(c.SSLRootCert, 0) >= 0 {
		p.add("SSLRootCert contains a NUL byte: remove it")
	}
	if len(*p) > n {
		return nil, ""
	}

	parseMode := mode
	if c.TLSConfig != nil {
		parseMode = "require" // replaced by TLSConfig
	}
	var b strings.Builder
	for _, kv := range [][2]string{
		{"host", c.Host},
		{"port", strconv.Itoa(port)},
		{"user", c.User},
		{"dbname", c.Database},
		{"passfile", ""},
		{"sslmode", parseMode},
		{"sslrootcert", c.SSLRootCert},
		{"sslcert", ""},
		{"sslkey", ""},
		{"sslpassword", ""},
		{"sslcertmode", "allow"},
		{"sslsni", "1"},
		{"sslnegotiation", "postgres"},
		{"target_session_attrs", "any"},
		{"connect_timeout", "0"},
		{"channel_binding", "prefer"},
		{"require_auth", ""},
		{"min_protocol_version", ""},
		{"max_protocol_version", ""},
	} {
		b.WriteString(kv[0])
		b.WriteString("='")
		b.WriteString(strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(kv[1]))
		b.WriteString("' ")
	}
	base, err := pgx.ParseConfig(b.String())
	if err != nil {
		// The string holds no password, so pgx's reason is safe to show.
		// The fields were checked above: what is left is the TLS files.
		reason := err
		if inner := errors.Unwrap(err); inner != nil {
			reason = inner
		}
		p.add("the TLS settings are not usable (%v): check Config.SSLRootCert", reason)
		return nil, ""
	}
	// Runtime parameters come from this Config only, not from PGOPTIONS,
	// PGAPPNAME, PGTZ or a service file.
	base.RuntimeParams = map[string]string{}
	c.setRuntimeParams(base)
	base.Password = c.Password
	return base, "sslmode=" + mode
}

// fromDSN parses the DSN, for a static password.
func (c *Config) fromDSN(p *problems) (*pgx.ConnConfig, string) {
	n := len(*p)
	for _, f := range []struct {
		name string
		set  bool
	}{
		{"Host", c.Host != ""},
		{"Port", c.Port != 0},
		{"User", c.User != ""},
		{"Database", c.Database != ""},
		{"Password", c.Password != ""},
		{"SSLMode", c.SSLMode != ""},
		{"SSLRootCert", c.SSLRootCert != ""},
	} {
		if f.set {
			p.add("DSN and %s are both set: put the %s in the DSN, or leave DSN empty", f.name, strings.ToLower(f.name))
		}
	}
	if c.Tokens != nil {
		p.add("DSN and Tokens are both set: a DSN is for a static password; with a token source set Host, User and Database (and Port, SSLMode) instead of DSN")
	}
	base, err := pgx.ParseConfig(c.DSN)
	if err != nil {
		// pgx's message quotes the connection string, redacted only on a
		// best-effort basis: leave it out, and give pgx's reason only
		// when it cannot hold any of it.
		why := ""
		if r := parseReason(err); r != "" {
			why = " (" + r + ")"
		}
		p.add("DSN cannot be parsed%s: write it as a URL (postgres://user:password@host:5432/dbname?sslmode=verify-full) or as keyword/value pairs (host=... port=... user=... password=... dbname=... sslmode=...); the DSN is left out of this message because it may hold a password", why)
		return nil, ""
	}
	if _, ok := base.RuntimeParams["search_path"]; ok && c.Schema != "" {
		p.add("Schema is set and the DSN sets search_path: set the schema in one place")
	}
	if _, ok := base.RuntimeParams["application_name"]; ok && c.ApplicationName != "" {
		p.add("ApplicationName is set and the DSN sets application_name: set it in one place")
	}
	if len(*p) > n {
		return nil, ""
	}
	c.setRuntimeParams(base)
	return base, describeTLS(base)
}

// setRuntimeParams adds the startup parameters of Schema and
// ApplicationName to the freshly parsed base configuration, before any
// connection shares it.
func (c *Config) setRuntimeParams(base *pgx.ConnConfig) {
	if c.Schema != "" {
		// Sent in the startup message: the server applies it before the
		// first query, at no extra round trip, and RESET ALL or DISCARD ALL
		// return to it.
		base.RuntimeParams["search_path"] = quoteIdentifier(c.Schema) + ", public"
	}
	if c.ApplicationName != "" {
		base.RuntimeParams["application_name"] = c.ApplicationName
	}
}

// setTLS makes t the TLS configuration of every host of base, one host once
// (the plaintext and duplicate fallbacks of sslmode allow and prefer go).
func setTLS(base *pgx.ConnConfig, t *tls.Config) {
	forHost := func(host string) *tls.Config {
		tc := t.Clone()
		if tc.ServerName == "" {
			tc.ServerName = host
		}
		return tc
	}
	type hostPort struct {
		host string
		port uint16
	}
	seen := map[hostPort]bool{{base.Host, base.Port}: true}
	base.TLSConfig = forHost(base.Host)
	var fallbacks []*pgconn.FallbackConfig
	for _, fb := range base.Fallbacks {
		hp := hostPort{fb.Host, fb.Port}
		if seen[hp] {
			continue
		}
		seen[hp] = true
		fallbacks = append(fallbacks, &pgconn.FallbackConfig{Host: fb.Host, Port: fb.Port, TLSConfig: forHost(fb.Host)})
	}
	base.Fallbacks = fallbacks
}

// tlsOnly reports whether every way base may connect uses TLS.
func tlsOnly(base *pgx.ConnConfig) bool {
	if base.TLSConfig == nil {
		return false
	}
	for _, fb := range base.Fallbacks {
		if fb.TLSConfig == nil {
			return false
		}
	}
	return true
}

func describeTLS(base *pgx.ConnConfig) string {
	switch {
	case tlsOnly(base):
		return "tls=required"
	case base.TLSConfig == nil && len(base.Fallbacks) == 0:
		return "tls=off"
	default:
		return "tls=optional"
	}
}

// queryExecModeName returns the name of a pgx query exec mode as pgx's
// default_query_exec_mode setting spells it, "default" for 0, and "" for a
// value that is not a mode.
func queryExecModeName(m pgx.QueryExecMode) string {
	switch m {
	case 0:
		return "default"
	case pgx.QueryExecModeCacheStatement:
		return "cache_statement"
	case pgx.QueryExecModeCacheDescribe:
		return "cache_describe"
	case pgx.QueryExecModeDescribeExec:
		return "describe_exec"
	case pgx.QueryExecModeExec:
		return "exec"
	case pgx.QueryExecModeSimpleProtocol:
		return "simple_protocol"
	}
	return ""
}

// validIdentifier reports whether s is a plain PostgreSQL identifier:
// 1 to 63 bytes of ASCII letters, digits, underscores and dollar signs,
// starting with a letter or an underscore.
func validIdentifier(s string) bool {
	if len(s) == 0 || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch >= 'a' && ch <= 'z', ch >= 'A' && ch <= 'Z', ch == '_':
		case (ch >= '0' && ch <= '9') || ch == '$':
			if i == 0 {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// quoteIdentifier quotes a validated identifier for PostgreSQL.
func quoteIdentifier(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// parseReason returns what pgx says is wrong with a connection string that
// it could not parse (an invalid port or sslmode, a root certificate file
// that cannot be read, ...), without the connection string, or "" when
// that reason could quote part of it: pgx's syntax errors quote the text
// (net/url's quote the whole URL, password included).
func parseReason(err error) string {
	var pe *pgconn.ParseConfigError
	if !errors.As(err, &pe) {
		return ""
	}
	msg := pe.Error() // cannot parse `<connection string, redacted>`: <reason>
	i := strings.LastIndex(msg, "`: ")
	if i < 0 {
		return ""
	}
	reason := msg[i+len("`: "):]
	if strings.HasPrefix(reason, "failed to parse as") || pe.ConnString != "" && strings.Contains(reason, pe.ConnString) {
		return ""
	}
	for _, risky := range []string{"://", "@", "password", "'"} {
		if strings.Contains(reason, risky) {
			return ""
		}
	}
	return reason
}
