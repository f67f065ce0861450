package connector

import (
	"crypto/tls"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestSetTLSStripsPlaintextFallbacks(t *testing.T) {
	for _, dsn := range []string{
		"host=db.example.com sslmode=prefer",
		"host=db.example.com sslmode=allow",
		"host=db.example.com sslmode=disable",
		"host=a.example.com,b.example.com port=5432,5433 sslmode=prefer",
	} {
		base, err := pgx.ParseConfig(dsn)
		if err != nil {
			t.Fatal(err)
		}
		hosts := map[string]bool{base.Host: true}
		for _, fb := range base.Fallbacks {
			hosts[fb.Host] = true
		}
		setTLS(base, &tls.Config{MinVersion: tls.VersionTLS13})
		if !tlsOnly(base) {
			t.Errorf("%s: a plaintext way remains after setTLS", dsn)
		}
		got := map[string]bool{base.Host: true}
		if base.TLSConfig.ServerName != base.Host {
			t.Errorf("%s: ServerName = %q, want %q", dsn, base.TLSConfig.ServerName, base.Host)
		}
		for _, fb := range base.Fallbacks {
			if got[fb.Host] {
				t.Errorf("%s: host %s is tried twice", dsn, fb.Host)
			}
			got[fb.Host] = true
			if fb.TLSConfig.ServerName != fb.Host || fb.TLSConfig.MinVersion != tls.VersionTLS13 {
				t.Errorf("%s: fallback %s has TLS config %+v", dsn, fb.Host, fb.TLSConfig)
			}
		}
		if len(got) != len(hosts) {
			t.Errorf("%s: hosts %v after setTLS, want %v", dsn, got, hosts)
		}
	}
}

func TestDescribeTLS(t *testing.T) {
	for dsn, want := range map[string]string{
		"host=h sslmode=disable":     "tls=off",
		"host=h sslmode=prefer":      "tls=optional",
		"host=h sslmode=allow":       "tls=optional",
		"host=h sslmode=require":     "tls=required",
		"host=h sslmode=verify-full": "tls=required",
	} {
		base, err := pgx.ParseConfig(dsn)
		if err != nil {
			t.Fatal(err)
		}
		if got := describeTLS(base); got != want {
			t.Errorf("%s: %s, want %s", dsn, got, want)
		}
	}
}

// FuzzSchema checks that a schema New accepts is a plain identifier and
// becomes a search_path of that one quoted identifier, then public.
func FuzzSchema(f *testing.F) {
	for _, s := range []string{"agents", "Agents_1$", "_x", "", "1a", `a"b`, "a b", "a,b", "a\x00", strings.Repeat("a", 63), strings.Repeat("a", 64), "ä"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, schema string) {
		r, err := Config{Host: "h", User: "u", Database: "d", Password: "p", SSLMode: "disable", Schema: schema}.resolve()
		if schema == "" {
			if err != nil {
				t.Fatalf("empty schema refused: %v", err)
			}
			return
		}
		if err != nil {
			if !strings.Contains(err.Error(), "not a plain identifier") {
				t.Fatalf("schema %q refused with %v", schema, err)
			}
			return
		}
		if r == nil || len(schema) > 63 || strings.ContainsAny(schema, "\" ,;'\\\x00") {
			t.Fatalf("schema %q accepted", schema)
		}
		for i := 0; i < len(schema); i++ {
			if schema[i] >= 0x80 {
				t.Fatalf("schema %q with a non-ASCII byte accepted", schema)
			}
		}
		if got, want := quoteIdentifier(schema)+", public", `"`+schema+`", public`; got != want {
			t.Fatalf("search_path %s, want %s", got, want)
		}
	})
}
