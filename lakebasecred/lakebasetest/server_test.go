package lakebasetest_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/databricks/databricks-sdk-go/apierr"
	"github.com/databricks/databricks-sdk-go/service/database"
	"github.com/databricks/databricks-sdk-go/service/iam"
	"github.com/databricks/databricks-sdk-go/service/postgres"
	"github.com/lakesession/lakesession/lakebasecred/lakebasetest"
)

const epName = "projects/p/branches/main/endpoints/rw"

func newServer(t *testing.T, opts ...lakebasetest.Option) *lakebasetest.Server {
	t.Helper()
	s := lakebasetest.NewServer(t, opts...)
	s.AddInstance(lakebasetest.Instance{Name: "inst", ReadWriteDNS: "rw.example.com", ReadOnlyDNS: "ro.example.com"})
	s.AddEndpoint(lakebasetest.Endpoint{Name: epName, Host: "ep.example.com"})
	return s
}

// TestPathsAndShapes calls every served path through the real SDK and
// checks what comes back.
func TestPathsAndShapes(t *testing.T) {
	clock := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	s := newServer(t, lakebasetest.WithClock(func() time.Time { return clock }))
	s.AddInstance(lakebasetest.Instance{Name: "off", State: lakebasetest.StateStopped})
	s.AddEndpoint(lakebasetest.Endpoint{Name: "projects/p/branches/main/endpoints/ro", Type: lakebasetest.EndpointReadOnly, Host: "ro.ep.example.com"})
	s.SetUserName("alice@example.com")
	w := s.WorkspaceClient()
	ctx := context.Background()

	me, err := w.CurrentUser.Me(ctx, iam.MeRequest{})
	if err != nil || me.UserName != "alice@example.com" {
		t.Errorf("Me = %+v, %v", me, err)
	}

	in, err := w.Database.GetDatabaseInstance(ctx, database.GetDatabaseInstanceRequest{Name: "inst"})
	if err != nil || in.Name != "inst" || in.State != database.DatabaseInstanceStateAvailable ||
		in.ReadWriteDns != "rw.example.com" || in.ReadOnlyDns != "ro.example.com" {
		t.Errorf("GetDatabaseInstance = %+v, %v", in, err)
	}
	off, err := w.Database.GetDatabaseInstance(ctx, database.GetDatabaseInstanceRequest{Name: "off"})
	if err != nil || off.State != database.DatabaseInstanceStateStopped || !off.Stopped || off.ReadWriteDns != "" {
		t.Errorf("stopped instance = %+v, %v", off, err)
	}
	if _, err := w.Database.GetDatabaseInstance(ctx, database.GetDatabaseInstanceRequest{Name: "nope"}); !errors.Is(err, apierr.ErrNotFound) {
		t.Errorf("unknown instance: %v, want not found", err)
	}
	all, err := w.Database.ListDatabaseInstancesAll(ctx, database.ListDatabaseInstancesRequest{})
	if err != nil || len(all) != 2 || all[0].Name != "inst" || all[1].Name != "off" {
		t.Errorf("ListDatabaseInstancesAll = %+v, %v", all, err)
	}

	cred, err := w.Database.GenerateDatabaseCredential(ctx, database.GenerateDatabaseCredentialRequest{InstanceNames: []string{"inst"}, RequestId: "r-1"})
	if err != nil || cred.Token == "" || cred.ExpirationTime != "2026-03-04T06:06:07Z" {
		t.Errorf("database credential: expiration %q, %v", cred.ExpirationTime, err)
	}
	if _, err := w.Database.GenerateDatabaseCredential(ctx, database.GenerateDatabaseCredentialRequest{InstanceNames: []string{"nope"}}); !errors.Is(err, apierr.ErrNotFound) {
		t.Errorf("credential for an unknown instance: %v, want not found", err)
	}

	ep, err := w.Postgres.GetEndpoint(ctx, postgres.GetEndpointRequest{Name: epName})
	if err != nil || ep.Name != epName || ep.Status == nil || ep.Status.Hosts == nil || ep.Status.Hosts.Host != "ep.example.com" ||
		ep.Status.EndpointType != postgres.EndpointTypeEndpointTypeReadWrite || ep.Spec.EndpointType != postgres.EndpointTypeEndpointTypeReadWrite {
		t.Errorf("GetEndpoint = %+v, %v", ep, err)
	}
	if _, err := w.Postgres.GetEndpoint(ctx, postgres.GetEndpointRequest{Name: "projects/p/branches/main/endpoints/nope"}); !errors.Is(err, apierr.ErrNotFound) {
		t.Errorf("unknown endpoint: %v, want not found", err)
	}
	eps, err := w.Postgres.ListEndpointsAll(ctx, postgres.ListEndpointsRequest{Parent: "projects/p/branches/main"})
	if err != nil || len(eps) != 2 || eps[0].Status.EndpointType != postgres.EndpointTypeEndpointTypeReadOnly || eps[1].Name != epName {
		t.Errorf("ListEndpointsAll = %+v, %v", eps, err)
	}
	if _, err := w.Postgres.ListEndpointsAll(ctx, postgres.ListEndpointsRequest{Parent: "projects/p/branches/nope"}); !errors.Is(err, apierr.ErrNotFound) {
		t.Errorf("endpoints of an unknown branch: %v, want not found", err)
	}
	pc, err := w.Postgres.GenerateDatabaseCredential(ctx, postgres.GenerateDatabaseCredentialRequest{Endpoint: epName})
	if err != nil || pc.Token == "" || pc.ExpireTime == nil || !pc.ExpireTime.AsTime().Equal(clock.Add(time.Hour)) {
		t.Errorf("postgres credential: %+v, %v", pc.ExpireTime, err)
	}

	for op, want := range map[lakebasetest.Op]int{
		lakebasetest.OpCurrentUser: 1, lakebasetest.OpGetInstance: 3, lakebasetest.OpListInstances: 1,
		lakebasetest.OpDatabaseCredential: 2, lakebasetest.OpGetEndpoint: 2, lakebasetest.OpListEndpoints: 2,
		lakebasetest.OpPostgresCredential: 1,
	} {
		if got := s.Calls(op); got != want {
			t.Errorf("Calls(%s) = %d, want %d", op, got, want)
		}
	}
	mints := s.Mints()
	if len(mints) != 2 || mints[0].Token != cred.Token || mints[0].Target != "inst" || mints[0].RequestID != "r-1" ||
		mints[0].User != "alice@example.com" || mints[1].Token != pc.Token || mints[1].Op != lakebasetest.OpPostgresCredential {
		t.Errorf("Mints = %v", mints)
	}
	if m, ok := s.Lookup(pc.Token); !ok || m.Target != epName {
		t.Errorf("Lookup = %v, %v", m, ok)
	}
	if _, ok := s.Lookup("not-a-token"); ok {
		t.Error("Lookup found a token never minted")
	}
}

// TestRemove: a removed instance or endpoint is gone from every path, and
// no token is minted for it.
func TestRemove(t *testing.T) {
	s := newServer(t)
	s.AddInstance(lakebasetest.Instance{Name: "other", ReadWriteDNS: "other.example.com"})
	w := s.WorkspaceClient()
	ctx := context.Background()
	s.RemoveInstance("inst")
	s.RemoveEndpoint(epName)

	if _, err := w.Database.GetDatabaseInstance(ctx, database.GetDatabaseInstanceRequest{Name: "inst"}); !errors.Is(err, apierr.ErrNotFound) {
		t.Errorf("removed instance: %v, want not found", err)
	}
	if all, err := w.Database.ListDatabaseInstancesAll(ctx, database.ListDatabaseInstancesRequest{}); err != nil || len(all) != 1 || all[0].Name != "other" {
		t.Errorf("instances after the removal: %+v, %v; want only \"other\"", all, err)
	}
	if _, err := w.Database.GenerateDatabaseCredential(ctx, database.GenerateDatabaseCredentialRequest{InstanceNames: []string{"inst"}}); !errors.Is(err, apierr.ErrNotFound) {
		t.Errorf("credential for a removed instance: %v, want not found", err)
	}
	if _, err := w.Postgres.GetEndpoint(ctx, postgres.GetEndpointRequest{Name: epName}); !errors.Is(err, apierr.ErrNotFound) {
		t.Errorf("removed endpoint: %v, want not found", err)
	}
	if _, err := w.Postgres.ListEndpointsAll(ctx, postgres.ListEndpointsRequest{Parent: "projects/p/branches/main"}); !errors.Is(err, apierr.ErrNotFound) {
		t.Errorf("endpoints of a branch whose only endpoint was removed: %v, want not found", err)
	}
	if _, err := w.Postgres.GenerateDatabaseCredential(ctx, postgres.GenerateDatabaseCredentialRequest{Endpoint: epName}); !errors.Is(err, apierr.ErrNotFound) {
		t.Errorf("credential for a removed endpoint: %v, want not found", err)
	}
	if n := s.MintCount(); n != 0 {
		t.Errorf("%d tokens minted for removed targets", n)
	}
	if _, err := w.Database.GetDatabaseInstance(ctx, database.GetDatabaseInstanceRequest{Name: "other"}); err != nil {
		t.Errorf("the instance left in place: %v", err)
	}
}

func TestPagination(t *testing.T) {
	s := lakebasetest.NewServer(t, lakebasetest.WithPageSize(2))
	for i := range 5 {
		s.AddInstance(lakebasetest.Instance{Name: fmt.Sprintf("i%d", i), ReadWriteDNS: fmt.Sprintf("i%d.example.com", i)})
		s.AddEndpoint(lakebasetest.Endpoint{Name: fmt.Sprintf("projects/p/branches/b/endpoints/e%d", i), Host: "h"})
	}
	w := s.WorkspaceClient()
	all, err := w.Database.ListDatabaseInstancesAll(context.Background(), database.ListDatabaseInstancesRequest{})
	if err != nil || len(all) != 5 || s.Calls(lakebasetest.OpListInstances) != 3 {
		t.Errorf("%d instances in %d calls (%v), want 5 in 3 pages", len(all), s.Calls(lakebasetest.OpListInstances), err)
	}
	eps, err := w.Postgres.ListEndpointsAll(context.Background(), postgres.ListEndpointsRequest{Parent: "projects/p/branches/b", PageSize: 1})
	if err != nil || len(eps) != 5 || s.Calls(lakebasetest.OpListEndpoints) != 5 {
		t.Errorf("%d endpoints in %d calls (%v), want 5 in 5 pages", len(eps), s.Calls(lakebasetest.OpListEndpoints), err)
	}
}

func TestAuthorizationRequired(t *testing.T) {
	s := newServer(t)
	resp, err := http.Get(s.URL() + "/api/2.0/preview/scim/v2/Me")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("no Authorization: status %d, want 401", resp.StatusCode)
	}
	if n := s.Calls(lakebasetest.OpCurrentUser); n != 0 {
		t.Errorf("an unauthenticated request was counted (%d)", n)
	}
}

func TestTokensRandomAndDistinct(t *testing.T) {
	s := newServer(t)
	w := s.WorkspaceClient()
	seen := map[string]bool{}
	var mu sync.Mutex
	record := func(tok string) {
		mu.Lock()
		defer mu.Unlock()
		if seen[tok] {
			t.Error("a token was minted twice")
		}
		seen[tok] = true
	}
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			c, err := w.Database.GenerateDatabaseCredential(context.Background(), database.GenerateDatabaseCredentialRequest{InstanceNames: []string{"inst"}})
			if err != nil {
				t.Error(err)
				return
			}
			record(c.Token)
		}()
		go func() {
			defer wg.Done()
			c, err := w.Postgres.GenerateDatabaseCredential(context.Background(), postgres.GenerateDatabaseCredentialRequest{Endpoint: epName})
			if err != nil {
				t.Error(err)
				return
			}
			record(c.Token)
		}()
	}
	wg.Wait()
	if len(seen) != 100 || s.MintCount() != 100 {
		t.Errorf("%d distinct tokens, %d mints, want 100", len(seen), s.MintCount())
	}
	for tok := range seen {
		if strings.ContainsAny(tok, `'"\ `) {
			t.Errorf("token %q has characters unsafe in a password literal", tok)
		}
	}
}

// TestRequestIDIdempotent: a retried request (same request_id) gets the
// same credential, as the real API promises; a new request_id gets a new
// token.
func TestRequestIDIdempotent(t *testing.T) {
	s := newServer(t)
	w := s.WorkspaceClient()
	get := func(id string) string {
		c, err := w.Database.GenerateDatabaseCredential(context.Background(), database.GenerateDatabaseCredentialRequest{InstanceNames: []string{"inst"}, RequestId: id})
		if err != nil {
			t.Fatal(err)
		}
		return c.Token
	}
	a, a2, b := get("same"), get("same"), get("other")
	if a != a2 || a == b || s.MintCount() != 2 {
		t.Errorf("same id: equal=%v; other id: equal=%v; %d mints, want 2", a == a2, a == b, s.MintCount())
	}
}

func TestTokenLifetime(t *testing.T) {
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	s := newServer(t, lakebasetest.WithClock(func() time.Time { return now }))
	w := s.WorkspaceClient()
	ctx := context.Background()
	s.SetTokenLifetime(4 * time.Second)
	c, err := w.Database.GenerateDatabaseCredential(ctx, database.GenerateDatabaseCredentialRequest{InstanceNames: []string{"inst"}})
	if err != nil || c.ExpirationTime != "2026-03-04T05:06:11Z" {
		t.Errorf("4s token expires %q (%v)", c.ExpirationTime, err)
	}
	s.SetTokenLifetime(lakebasetest.NoExpiry)
	c, err = w.Database.GenerateDatabaseCredential(ctx, database.GenerateDatabaseCredentialRequest{InstanceNames: []string{"inst"}})
	if err != nil || c.ExpirationTime != "" {
		t.Errorf("NoExpiry: expiration %q (%v), want none", c.ExpirationTime, err)
	}
	pc, err := w.Postgres.GenerateDatabaseCredential(ctx, postgres.GenerateDatabaseCredentialRequest{Endpoint: epName})
	if err != nil || pc.ExpireTime != nil {
		t.Errorf("NoExpiry: expire_time %v (%v), want none", pc.ExpireTime, err)
	}
	if m := s.Mints(); !m[1].ExpireTime.IsZero() || !m[0].ExpireTime.Equal(now.Add(4*time.Second)) {
		t.Errorf("recorded expiries: %v, %v", m[0].ExpireTime, m[1].ExpireTime)
	}
}

func TestOnMintHook(t *testing.T) {
	s := newServer(t)
	w := s.WorkspaceClient()
	ctx := context.Background()
	var mu sync.Mutex
	var seen []lakebasetest.Mint
	s.OnMint(func(m lakebasetest.Mint) error {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, m)
		if m.Op == lakebasetest.OpPostgresCredential {
			return errors.New("cannot set the password of " + m.Token)
		}
		return nil
	})
	c, err := w.Database.GenerateDatabaseCredential(ctx, database.GenerateDatabaseCredentialRequest{InstanceNames: []string{"inst"}})
	mu.Lock()
	if err != nil || len(seen) != 1 || seen[0].Token != c.Token || seen[0].ExpireTime.IsZero() {
		t.Fatalf("hook saw %v for a mint returning (%v)", seen, err)
	}
	mu.Unlock()
	_, err = w.Postgres.GenerateDatabaseCredential(ctx, postgres.GenerateDatabaseCredentialRequest{Endpoint: epName})
	mu.Lock()
	defer mu.Unlock()
	var apiErr *apierr.APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusInternalServerError {
		t.Fatalf("a failing hook gave %v, want HTTP 500", err)
	}
	if strings.Contains(err.Error(), seen[1].Token) {
		t.Error("the hook's error, quoting the token, reached the client")
	}
	if s.MintCount() != 1 {
		t.Errorf("%d mints recorded, want 1 (the failed one was never handed out)", s.MintCount())
	}
	if _, ok := s.Lookup(seen[1].Token); ok {
		t.Error("the token of a failed mint can be looked up")
	}
	s.OnMint(nil)
	if _, err := w.Postgres.GenerateDatabaseCredential(ctx, postgres.GenerateDatabaseCredentialRequest{Endpoint: epName}); err != nil {
		t.Errorf("after removing the hook: %v", err)
	}
}

func TestInjectedFailures(t *testing.T) {
	s := newServer(t)
	w := s.WorkspaceClient()
	ctx := context.Background()
	get := func() error {
		_, err := w.Database.GetDatabaseInstance(ctx, database.GetDatabaseInstanceRequest{Name: "inst"})
		return err
	}

	s.Fail(lakebasetest.OpGetInstance, http.StatusInternalServerError, 2)
	for i := range 2 {
		if err := get(); !errors.Is(err, apierr.ErrInternalError) {
			t.Errorf("call %d: %v, want the injected 500", i+1, err)
		}
	}
	if err := get(); err != nil {
		t.Errorf("after the 2 injected failures: %v", err)
	}

	s.Fail(lakebasetest.OpGetInstance, http.StatusForbidden, 0)
	for range 3 {
		if err := get(); !errors.Is(err, apierr.ErrPermissionDenied) {
			t.Errorf("%v, want the injected 403", err)
		}
	}
	if _, err := w.CurrentUser.Me(ctx, iam.MeRequest{}); err != nil {
		t.Errorf("another operation failed too: %v", err)
	}
	s.ClearFailures(lakebasetest.OpGetInstance)
	if err := get(); err != nil {
		t.Errorf("after ClearFailures: %v", err)
	}
	if n := s.Calls(lakebasetest.OpGetInstance); n != 7 {
		t.Errorf("Calls = %d, want 7 (failed calls count)", n)
	}

	// 503 is one the SDK retries; its retry loop gives up after a second.
	s.Fail(lakebasetest.OpListInstances, http.StatusServiceUnavailable, 0)
	start := time.Now()
	_, err := w.Database.ListDatabaseInstancesAll(ctx, database.ListDatabaseInstancesRequest{})
	if !errors.Is(err, apierr.ErrTemporarilyUnavailable) {
		t.Errorf("%v, want the injected 503", err)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("the 503 took %v to surface", d)
	}
	s.ClearFailures()
	if _, err := w.Database.ListDatabaseInstancesAll(ctx, database.ListDatabaseInstancesRequest{}); err != nil {
		t.Errorf("after ClearFailures(): %v", err)
	}
}

func TestDelay(t *testing.T) {
	s := newServer(t)
	w := s.WorkspaceClient()
	s.SetDelay(lakebasetest.OpCurrentUser, time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := w.CurrentUser.Me(ctx, iam.MeRequest{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("delayed call: %v, want the client's deadline", err)
	}
	s.SetDelay(lakebasetest.OpCurrentUser, 50*time.Millisecond)
	start := time.Now()
	if _, err := w.CurrentUser.Me(context.Background(), iam.MeRequest{}); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) < 50*time.Millisecond {
		t.Error("the delay was not applied")
	}
	s.SetDelay(lakebasetest.OpCurrentUser, 0)
	if n := s.Calls(lakebasetest.OpCurrentUser); n != 2 {
		t.Errorf("Calls = %d, want 2", n)
	}
}

// TestCloseEndsDelayedRequests: a request held by a long delay does not
// keep the test from ending.
func TestCloseEndsDelayedRequests(t *testing.T) {
	done := make(chan struct{})
	t.Run("inner", func(t *testing.T) {
		s := newServer(t)
		s.SetDelay(lakebasetest.OpCurrentUser, time.Hour)
		w := s.WorkspaceClient()
		go func() {
			defer close(done)
			_, _ = w.CurrentUser.Me(context.Background(), iam.MeRequest{})
		}()
		for s.Calls(lakebasetest.OpCurrentUser) == 0 {
			time.Sleep(time.Millisecond)
		}
	}) // the server closes here
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("a delayed request outlived the server")
	}
}

func TestMintStringRedacts(t *testing.T) {
	m := lakebasetest.Mint{Op: lakebasetest.OpDatabaseCredential, Target: "inst", User: "u", Token: "eyJ.secret-part", ExpireTime: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	for _, got := range []string{m.String(), fmt.Sprintf("%v", m), fmt.Sprintf("%+v", m), fmt.Sprintf("%#v", m), fmt.Sprint([]lakebasetest.Mint{m})} {
		if strings.Contains(got, "secret-part") {
			t.Errorf("%s shows the token", got)
		}
	}
}

func TestAlterRoleSQL(t *testing.T) {
	m := lakebasetest.Mint{User: `o"brien@example.com`, Token: "a'b", ExpireTime: time.Date(2026, 1, 2, 3, 4, 5, 600_000_000, time.FixedZone("x", 3600))}
	want := `ALTER ROLE "o""brien@example.com" WITH LOGIN PASSWORD 'a''b' VALID UNTIL '2026-01-02T02:04:05.6Z'`
	if got := m.AlterRoleSQL(); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	m.ExpireTime = time.Time{}
	if got := m.AlterRoleSQL(); !strings.HasSuffix(got, `VALID UNTIL 'infinity'`) {
		t.Errorf("no expiry: %s", got)
	}
}
