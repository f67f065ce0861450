package lakebasetest_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/lakesession/lakesession/lakebasecred"
	"github.com/lakesession/lakesession/lakebasecred/lakebasetest"
)

// A fake workspace with a provisioned instance, an autoscaling endpoint
// and a short token lifetime, used through lakebasecred as an app would.
// The body belongs in a test function: t is its *testing.T.
func ExampleNewServer() {
	var t *testing.T // in a test: func TestMyApp(t *testing.T) { ... }
	ctx := context.Background()

	fake := lakebasetest.NewServer(t) // closed when the test ends
	fake.SetUserName("app@example.com")
	fake.AddInstance(lakebasetest.Instance{Name: "my-instance", ReadWriteDNS: "127.0.0.1"})
	fake.AddEndpoint(lakebasetest.Endpoint{Name: "projects/p/branches/main/endpoints/rw", Host: "127.0.0.1"})
	fake.SetTokenLifetime(4 * time.Second)
	fake.OnMint(func(m lakebasetest.Mint) error {
		t.Logf("minted %v", m) // a Mint prints without its token
		return nil
	})

	src, err := lakebasecred.New(ctx, fake.WorkspaceClient(), lakebasecred.Target{Instance: "my-instance"})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if _, err := src.Token(ctx); err != nil {
		t.Fatal(err)
	}
	if n := fake.Calls(lakebasetest.OpDatabaseCredential); n != 1 {
		t.Errorf("%d credential calls, want 1", n)
	}
}

// Failures and delays of the control plane, for an app's error paths.
func ExampleServer_Fail() {
	var t *testing.T // in a test
	fake := lakebasetest.NewServer(t)
	fake.AddInstance(lakebasetest.Instance{Name: "my-instance", ReadWriteDNS: "127.0.0.1"})

	fake.Fail(lakebasetest.OpDatabaseCredential, http.StatusServiceUnavailable, 0) // every call, until cleared
	fake.Fail(lakebasetest.OpCurrentUser, http.StatusForbidden, 1)                 // the next call only
	fake.SetDelay(lakebasetest.OpGetInstance, 2*time.Second)

	// ... exercise the app ...

	fake.ClearFailures()
	fake.SetDelay(lakebasetest.OpGetInstance, 0)
}
