package connector_test

import (
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lakesession/lakesession/connector"
)

func fmtAll(v any) []string {
	return []string{
		fmt.Sprint(v),
		fmt.Sprintf("%v", v),
		fmt.Sprintf("%+v", v),
		fmt.Sprintf("%#v", v),
		fmt.Sprintf("%s", v),
		fmt.Sprintf("%q", v),
	}
}

func TestNewReportsEveryProblem(t *testing.T) {
	const secret = "hunter2-very-secret"
	src := &fakeSource{tok: "t"}
	tests := []struct {
		name string
		cfg  connector.Config
		want []string // each must appear in the error
		n    int      // problems reported at least
	}{
		{"empty", connector.Config{}, []string{"set Config.Host", "set Config.User", "set Config.Database", "set Config.Tokens"}, 4},
		{"no credentials", connector.Config{Host: "h", User: "u", Database: "d"}, []string{"no credentials"}, 1},
		{"tokens and password", connector.Config{Host: "h", User: "u", Database: "d", Tokens: src, Password: secret}, []string{"Tokens and Password are both set"}, 1},
		{"token with sslmode disable", connector.Config{Host: "h", User: "u", Database: "d", Tokens: src, SSLMode: "disable"}, []string{`SSLMode "disable" can send the token without TLS`, "require, verify-ca or verify-full"}, 1},
		{"token with sslmode allow", connector.Config{Host: "h", User: "u", Database: "d", Tokens: src, SSLMode: "allow"}, []string{`SSLMode "allow" can send the token without TLS`}, 1},
		{"token with sslmode prefer", connector.Config{Host: "h", User: "u", Database: "d", Tokens: src, SSLMode: "prefer"}, []string{`SSLMode "prefer" can send the token without TLS`}, 1},
		{"unknown sslmode", connector.Config{Host: "h", User: "u", Database: "d", Password: secret, SSLMode: "strict"}, []string{`SSLMode "strict" is not an sslmode`}, 1},
		{"port out of range", connector.Config{Host: "h", Port: 70000, User: "u", Database: "d", Password: secret}, []string{"Port 70000 is out of range"}, 1},
		{"negative port", connector.Config{Host: "h", Port: -1, User: "u", Database: "d", Password: secret}, []string{"Port -1 is out of range"}, 1},
		{"token over a Unix socket", connector.Config{Host: "/var/run/postgresql", User: "u", Database: "d", Tokens: src, SSLMode: "require"}, []string{"would not always use TLS", "connect over TCP"}, 1},
		{"several hosts", connector.Config{Host: "a,b", User: "u", Database: "d", Tokens: src}, []string{`Host "a,b" is not one host name`}, 1},
		{"NUL in user", connector.Config{Host: "h", User: "u\x00", Database: "d", Tokens: src}, []string{"User contains a NUL byte"}, 1},
		{"NUL in database", connector.Config{Host: "h", User: "u", Database: "d\x00", Tokens: src}, []string{"Database contains a NUL byte"}, 1},
		{"bad schema", connector.Config{Host: "h", User: "u", Database: "d", Tokens: src, Schema: `x"; DROP TABLE t; --`}, []string{"is not a plain identifier"}, 1},
		{"schema starting with a digit", connector.Config{Host: "h", User: "u", Database: "d", Tokens: src, Schema: "1abc"}, []string{"is not a plain identifier"}, 1},
		{"schema too long", connector.Config{Host: "h", User: "u", Database: "d", Tokens: src, Schema: strings.Repeat("a", 64)}, []string{"is not a plain identifier"}, 1},
		{"NUL in application name", connector.Config{Host: "h", User: "u", Database: "d", Tokens: src, ApplicationName: "a\x00"}, []string{"ApplicationName contains a NUL byte"}, 1},
		{"negative timeout", connector.Config{Host: "h", User: "u", Database: "d", Tokens: src, ConnectTimeout: -time.Second}, []string{"ConnectTimeout is negative"}, 1},
		{"tls config and sslmode", connector.Config{Host: "h", User: "u", Database: "d", Tokens: src, TLSConfig: &tls.Config{}, SSLMode: "require", SSLRootCert: "/x"}, []string{"SSLMode (\"require\") and TLSConfig are both set", "SSLRootCert and TLSConfig are both set"}, 2},
		{"unreadable root cert", connector.Config{Host: "h", User: "u", Database: "d", Tokens: src, SSLMode: "verify-full", SSLRootCert: "/nonexistent/root.crt"}, []string{"the TLS settings are not usable", "unable to read CA file", "check Config.SSLRootCert"}, 1},
		{"DSN with fields", connector.Config{DSN: "postgres://u:" + secret + "@h/d", Host: "h", Port: 1, User: "u", Database: "d", Password: secret, SSLMode: "disable", SSLRootCert: "/x"},
			[]string{"DSN and Host are both set", "DSN and Port are both set", "DSN and User are both set", "DSN and Database are both set", "DSN and Password are both set", "DSN and SSLMode are both set", "DSN and SSLRootCert are both set"}, 7},
		{"DSN with tokens", connector.Config{DSN: "postgres://u@h/d?sslmode=verify-full", Tokens: src}, []string{"DSN and Tokens are both set"}, 1},
		{"bad DSN", connector.Config{DSN: "postgres://u:" + secret + "@h:notaport/d"}, []string{"DSN cannot be parsed"}, 1},
		{"bad keyword DSN", connector.Config{DSN: "host=h password='" + secret}, []string{"DSN cannot be parsed"}, 1},
		{"DSN with a bad sslmode", connector.Config{DSN: "postgres://u:" + secret + "@h/d?sslmode=strict"}, []string{"DSN cannot be parsed (failed to configure TLS (sslmode is invalid))"}, 1},
		{"DSN with a missing root cert", connector.Config{DSN: "postgres://u:" + secret + "@h/d?sslmode=verify-full&sslrootcert=/nonexistent/root.crt"}, []string{"DSN cannot be parsed (failed to configure TLS (unable to read CA file", "/nonexistent/root.crt"}, 1},
		{"keyword DSN with a bad port", connector.Config{DSN: "host=h port=x user=u password=" + secret}, []string{"DSN cannot be parsed (invalid port)"}, 1},
		{"DSN search_path and schema", connector.Config{DSN: "postgres://u:" + secret + "@h/d?search_path=x", Schema: "y"}, []string{"the DSN sets search_path"}, 1},
		{"DSN application_name twice", connector.Config{DSN: "postgres://u:" + secret + "@h/d?application_name=x", ApplicationName: "y"}, []string{"the DSN sets application_name"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := connector.New(tt.cfg)
			if err == nil {
				t.Fatalf("New returned %v and no error", c)
			}
			var ce *connector.ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("error is %T, want *connector.ConfigError: %v", err, err)
			}
			if len(ce.Problems) < tt.n {
				t.Errorf("%d problems reported, want at least %d: %v", len(ce.Problems), tt.n, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not say %q: %v", w, err)
				}
			}
			for _, text := range errorTexts(err) {
				mustNotContain(t, "configuration error", text, secret)
			}
		})
	}
}

func TestNewAcceptsValidConfigs(t *testing.T) {
	src := &fakeSource{tok: "t"}
	for name, cfg := range map[string]connector.Config{
		"token, default sslmode":     {Host: "db.example.com", User: "u", Database: "d", Tokens: src},
		"token, require":             {Host: "db.example.com", Port: 6543, User: "u", Database: "d", Tokens: src, SSLMode: "require"},
		"token, verify-ca":           {Host: "db.example.com", User: "u", Database: "d", Tokens: src, SSLMode: "verify-ca"},
		"token, system roots":        {Host: "db.example.com", User: "u", Database: "d", Tokens: src, SSLRootCert: "system"},
		"token, TLS config":          {Host: "db.example.com", User: "u", Database: "d", Tokens: src, TLSConfig: &tls.Config{MinVersion: tls.VersionTLS13}},
		"token, schema and app name": {Host: "db.example.com", User: "u", Database: "d", Tokens: src, Schema: "Agents_1$", ApplicationName: "svc"},
		"password, no TLS":           {Host: "localhost", User: "u", Database: "d", Password: "p", SSLMode: "disable"},
		"password, prefer":           {Host: "localhost", User: "u", Database: "d", Password: "p", SSLMode: "prefer"},
		"DSN URL":                    {DSN: "postgres://u:p@localhost:5432/d?sslmode=disable"},
		"DSN keyword/value":          {DSN: "host=localhost user=u password='p w' dbname=d sslmode=prefer", Schema: "s"},
		"DSN with TLS config":        {DSN: "postgres://u:p@localhost/d?sslmode=prefer", TLSConfig: &tls.Config{ServerName: "localhost"}},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := connector.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if c.Driver() == nil {
				t.Error("Driver() is nil")
			}
		})
	}
}

func TestNewKeepsAPrivateCopy(t *testing.T) {
	tc := &tls.Config{}
	cfg := connector.Config{Host: "h", User: "u", Database: "d", Tokens: &fakeSource{}, TLSConfig: tc}
	c, err := connector.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if tc.ServerName != "" {
		t.Errorf("New changed the caller's TLSConfig: ServerName = %q", tc.ServerName)
	}
	before := c.String()
	cfg.Host = "other"
	cfg.Schema = "changed"
	if after := c.String(); after != before {
		t.Errorf("changing the Config after New changed the Connector: %s -> %s", before, after)
	}
}

func TestPrintingHidesSecrets(t *testing.T) {
	const password = "s3cret-pass-word"
	cfgs := []connector.Config{
		{Host: "h", User: "u", Database: "d", Password: password, SSLMode: "disable"},
		{DSN: "postgres://u:" + password + "@h/d?sslmode=disable"},
		{DSN: "host=h user=u password=" + password + " dbname=d sslmode=disable"},
	}
	for _, cfg := range cfgs {
		for _, text := range fmtAll(cfg) {
			mustNotContain(t, "printed Config", text, password)
		}
		for _, text := range fmtAll(&cfg) {
			mustNotContain(t, "printed *Config", text, password)
		}
		c, err := connector.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		for _, text := range fmtAll(c) {
			mustNotContain(t, "printed Connector", text, password)
		}
		for _, text := range fmtAll(struct{ C *connector.Connector }{c}) {
			mustNotContain(t, "printed struct holding a Connector", text, password)
		}
		if !strings.Contains(c.String(), "user=u") || !strings.Contains(c.String(), "password=static") {
			t.Errorf("String() = %s, want user and the kind of password", c)
		}
	}

	// A token source is shown by its type, never asked for a token.
	src := &fakeSource{tok: "the-token-itself"}
	c, err := connector.New(connector.Config{Host: "h", User: "u", Database: "d", Tokens: src})
	if err != nil {
		t.Fatal(err)
	}
	for _, text := range append(fmtAll(c), fmtAll(connector.Config{Tokens: src})...) {
		mustNotContain(t, "printed Connector", text, "the-token-itself")
	}
	if !strings.Contains(c.String(), "*connector_test.fakeSource") || !strings.Contains(c.String(), "sslmode=verify-full") {
		t.Errorf("String() = %s, want the source's type and sslmode=verify-full", c)
	}
	if src.calls.Load() != 0 {
		t.Errorf("New or String called Token %d times, want 0", src.calls.Load())
	}
}
