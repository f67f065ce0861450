package lakebasecred

import (
	"testing"

	"github.com/lakesession/lakesession/lakebasecred/lakebasetest"
)

// PooledHost is the endpoint's pooled host, read_write_pooled_host for a
// READ_WRITE endpoint and read_only_pooled_host for a READ_ONLY one, found
// by endpoint name and by project and branch; "" when the endpoint has none
// and for a provisioned instance.
func TestPooledHost(t *testing.T) {
	fake := newFake(t)
	fake.AddEndpoint(lakebasetest.Endpoint{Name: "projects/p/branches/main/endpoints/rw", Host: "rw.example.com", PooledHost: "rw-pooler.example.com"})
	fake.AddEndpoint(lakebasetest.Endpoint{Name: "projects/p/branches/main/endpoints/ro", Type: lakebasetest.EndpointReadOnly, Host: "ro.example.com", PooledHost: "ro-pooler.example.com"})
	fake.AddEndpoint(lakebasetest.Endpoint{Name: "projects/p/branches/plain/endpoints/rw", Host: "plain.example.com"})

	for _, tc := range []struct {
		target     Target
		host, pool string
	}{
		{Target{Endpoint: "projects/p/branches/main/endpoints/rw"}, "rw.example.com", "rw-pooler.example.com"},
		{Target{Project: "p", Branch: "main"}, "rw.example.com", "rw-pooler.example.com"},
		{Target{Endpoint: "projects/p/branches/main/endpoints/ro"}, "ro.example.com", "ro-pooler.example.com"},
		{Target{Endpoint: "projects/p/branches/plain/endpoints/rw"}, "plain.example.com", ""},
		{Target{Instance: instName}, instHost, ""},
	} {
		s := newSource(t, fake, tc.target)
		if s.Host() != tc.host || s.PooledHost() != tc.pool {
			t.Errorf("%+v: Host %q PooledHost %q, want %q %q", tc.target, s.Host(), s.PooledHost(), tc.host, tc.pool)
		}
	}

	// A test can change the pooled host: the next Source sees it.
	fake.AddEndpoint(lakebasetest.Endpoint{Name: "projects/p/branches/plain/endpoints/rw", Host: "plain.example.com", PooledHost: "new-pooler.example.com"})
	if s := newSource(t, fake, Target{Endpoint: "projects/p/branches/plain/endpoints/rw"}); s.PooledHost() != "new-pooler.example.com" {
		t.Errorf("PooledHost after AddEndpoint = %q, want new-pooler.example.com", s.PooledHost())
	}
}
