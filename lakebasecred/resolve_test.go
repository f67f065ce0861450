package lakebasecred

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/databricks/databricks-sdk-go/apierr"
	"github.com/google/uuid"
	"github.com/lakesession/lakesession/lakebasecred/lakebasetest"
)

func TestInstanceByName(t *testing.T) {
	fake := newFake(t)
	fake.SetUserName("alice@example.com")
	s := newSource(t, fake, Target{Instance: instName})

	if s.Host() != instHost || s.User() != "alice@example.com" || s.Database() != DefaultDatabase {
		t.Fatalf("got host %q user %q database %q, want %q %q %q", s.Host(), s.User(), s.Database(), instHost, "alice@example.com", DefaultDatabase)
	}
	if n := fake.Calls(lakebasetest.OpGetInstance); n != 1 {
		t.Errorf("GetDatabaseInstance called %d times, want 1", n)
	}
	if n := fake.Calls(lakebasetest.OpCurrentUser); n != 1 {
		t.Errorf("Me called %d times, want 1", n)
	}
	if n := fake.MintCount(); n != 0 {
		t.Errorf("New minted %d tokens, want none", n)
	}

	tok := mustToken(t, s)
	s.Invalidate()
	tok2 := mustToken(t, s)
	mints := fake.Mints()
	if len(mints) != 2 {
		t.Fatalf("%d mints, want 2", len(mints))
	}
	for i, m := range mints {
		if m.Op != lakebasetest.OpDatabaseCredential || m.Target != instName {
			t.Errorf("mint %d: %v, want a database credential for %q", i, m, instName)
		}
		if _, err := uuid.Parse(m.RequestID); err != nil {
			t.Errorf("mint %d: request_id %q is not a uuid: %v", i, m.RequestID, err)
		}
	}
	if mints[0].RequestID == mints[1].RequestID {
		t.Errorf("both mints used request_id %q; each mint needs a new one", mints[0].RequestID)
	}
	if tok != mints[0].Token || tok2 != mints[1].Token {
		t.Error("Token did not return the minted tokens")
	}
}

func TestInstanceByHostname(t *testing.T) {
	for _, tc := range []struct {
		name     string
		given    string
		wantHost string
		wantInst string
		pages    int // the page of the match: none after it is fetched
	}{
		{"read_write_dns", "rw.b.example.com", "rw.b.example.com", "b", 2},
		{"read_write_dns in other case", "RW.B.Example.COM", "rw.b.example.com", "b", 2},
		{"read_only_dns gives the read_write_dns", "ro.b.example.com", "rw.b.example.com", "b", 2},
		{"read_only_dns of an instance without read_write_dns", "ro.c.example.com", "ro.c.example.com", "c", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := lakebasetest.NewServer(t, lakebasetest.WithPageSize(1)) // one instance per page
			fake.AddInstance(lakebasetest.Instance{Name: "a", ReadWriteDNS: "rw.a.example.com"})
			fake.AddInstance(lakebasetest.Instance{Name: "b", ReadWriteDNS: "rw.b.example.com", ReadOnlyDNS: "ro.b.example.com"})
			fake.AddInstance(lakebasetest.Instance{Name: "c", ReadOnlyDNS: "ro.c.example.com"})
			fake.AddInstance(lakebasetest.Instance{Name: "d", ReadWriteDNS: "rw.d.example.com"})
			s := newSource(t, fake, Target{Instance: tc.given})
			if s.Host() != tc.wantHost {
				t.Errorf("Host() = %q, want %q", s.Host(), tc.wantHost)
			}
			if n := fake.Calls(lakebasetest.OpGetInstance); n != 0 {
				t.Errorf("a hostname was looked up with GetDatabaseInstance (%d calls)", n)
			}
			if n := fake.Calls(lakebasetest.OpListInstances); n != tc.pages {
				t.Errorf("ListDatabaseInstances called %d times, want %d: the match is on page %d (past the first), and no page after it is fetched", n, tc.pages, tc.pages)
			}
			mustToken(t, s)
			if m := fake.Mints(); len(m) != 1 || m[0].Target != tc.wantInst {
				t.Errorf("mints %v, want one for instance %q", m, tc.wantInst)
			}
		})
	}
}

func TestInstanceHostFallsBackToReadOnlyDNS(t *testing.T) {
	fake := lakebasetest.NewServer(t)
	fake.AddInstance(lakebasetest.Instance{Name: "replica", ReadOnlyDNS: "ro.replica.example.com"})
	s := newSource(t, fake, Target{Instance: "replica"})
	if s.Host() != "ro.replica.example.com" {
		t.Errorf("Host() = %q, want the read_only_dns", s.Host())
	}
}

func TestInstanceUpdatingIsUsable(t *testing.T) {
	fake := lakebasetest.NewServer(t)
	fake.AddInstance(lakebasetest.Instance{Name: "busy", State: lakebasetest.StateUpdating, ReadWriteDNS: "busy.example.com"})
	s := newSource(t, fake, Target{Instance: "  busy\n"}) // spaces are trimmed
	if s.Host() != "busy.example.com" {
		t.Errorf("Host() = %q", s.Host())
	}
}

func TestEndpointByName(t *testing.T) {
	fake := newFake(t)
	s := newSource(t, fake, Target{Endpoint: epName})
	if s.Host() != epHost || s.User() != lakebasetest.DefaultUserName {
		t.Errorf("host %q user %q, want %q %q", s.Host(), s.User(), epHost, lakebasetest.DefaultUserName)
	}
	if n := fake.Calls(lakebasetest.OpGetEndpoint); n != 1 {
		t.Errorf("GetEndpoint called %d times, want 1", n)
	}
	mustToken(t, s)
	if m := fake.Mints(); len(m) != 1 || m[0].Op != lakebasetest.OpPostgresCredential || m[0].Target != epName {
		t.Errorf("mints %v, want one postgres credential for %q", m, epName)
	}
}

func TestProjectAndBranch(t *testing.T) {
	for _, target := range []Target{
		{Project: "p", Branch: "main"},
		{Project: "projects/p", Branch: "main"},
		{Project: "p", Branch: "projects/p/branches/main"},
	} {
		t.Run(target.Project+"+"+target.Branch, func(t *testing.T) {
			fake := lakebasetest.NewServer(t, lakebasetest.WithPageSize(1))
			// Sorted by name, the read-only endpoints come first, each on its page.
			fake.AddEndpoint(lakebasetest.Endpoint{Name: "projects/p/branches/main/endpoints/a-ro", Type: lakebasetest.EndpointReadOnly, Host: "ro.example.com"})
			fake.AddEndpoint(lakebasetest.Endpoint{Name: "projects/p/branches/main/endpoints/b-ro", Type: lakebasetest.EndpointReadOnly, Host: "ro2.example.com"})
			fake.AddEndpoint(lakebasetest.Endpoint{Name: "projects/p/branches/main/endpoints/c-rw", Type: lakebasetest.EndpointReadWrite, Host: "rw.example.com"})
			fake.AddEndpoint(lakebasetest.Endpoint{Name: "projects/p/branches/main/endpoints/d-ro", Type: lakebasetest.EndpointReadOnly, Host: "ro3.example.com"})
			fake.AddEndpoint(lakebasetest.Endpoint{Name: "projects/p/branches/dev/endpoints/rw", Host: "dev.example.com"})
			s := newSource(t, fake, target)
			if s.Host() != "rw.example.com" {
				t.Errorf("Host() = %q, want the READ_WRITE endpoint's host", s.Host())
			}
			if n := fake.Calls(lakebasetest.OpListEndpoints); n != 3 {
				t.Errorf("ListEndpoints called %d times, want 3: up to the page of the READ_WRITE endpoint", n)
			}
			mustToken(t, s)
			if m := fake.Mints(); len(m) != 1 || m[0].Target != "projects/p/branches/main/endpoints/c-rw" {
				t.Errorf("mints %v, want one for the READ_WRITE endpoint", m)
			}
		})
	}
}

func TestUserAndDatabaseOptions(t *testing.T) {
	fake := newFake(t)
	s := newSource(t, fake, Target{Instance: instName}, WithUser("svc-principal"), WithDatabase("agents"))
	if s.User() != "svc-principal" || s.Database() != "agents" {
		t.Errorf("user %q database %q", s.User(), s.Database())
	}
	if n := fake.Calls(lakebasetest.OpCurrentUser); n != 0 {
		t.Errorf("Me called %d times although WithUser was given", n)
	}
}

// TestConfigErrors checks every configuration error: the type, that it
// says what to set, and that nothing was minted.
func TestConfigErrors(t *testing.T) {
	type setup func(*lakebasetest.Server)
	for _, tc := range []struct {
		name   string
		target Target
		opts   []Option
		setup  setup
		want   []string // substrings of the message
		cause  error    // errors.Is(err, cause) when set
		noAPI  bool     // found before any API call
	}{
		{name: "no target", target: Target{}, want: []string{"set Target.Instance", "Target.Endpoint", "Target.Project and Target.Branch"}, noAPI: true},
		{name: "only spaces", target: Target{Instance: "  "}, want: []string{"no target"}, noAPI: true},
		{name: "instance and endpoint", target: Target{Instance: instName, Endpoint: epName}, want: []string{"set only one kind of target"}, noAPI: true},
		{name: "instance and project", target: Target{Instance: instName, Project: "p", Branch: "b"}, want: []string{"set only one kind of target"}, noAPI: true},
		{name: "endpoint and branch", target: Target{Endpoint: epName, Branch: "b"}, want: []string{"set either Target.Endpoint, or Target.Project and Target.Branch"}, noAPI: true},
		{name: "project without branch", target: Target{Project: "p"}, want: []string{"set Target.Branch too"}, noAPI: true},
		{name: "branch without project", target: Target{Branch: "b"}, want: []string{"set Target.Project too"}, noAPI: true},
		{name: "bad project", target: Target{Project: "p/x", Branch: "b"}, want: []string{`Target.Project "p/x" is not a project`}, noAPI: true},
		{name: "bad branch", target: Target{Project: "p", Branch: "x/b"}, want: []string{`Target.Branch "x/b" is not a branch`}, noAPI: true},
		{name: "branch of another project", target: Target{Project: "p", Branch: "projects/q/branches/b"}, want: []string{"belongs to project \"q\"", "make them agree"}, noAPI: true},
		{name: "endpoint not a resource name", target: Target{Endpoint: "primary"}, want: []string{`Target.Endpoint "primary" is not an endpoint resource name`, endpointForm}, noAPI: true},
		{name: "endpoint missing id", target: Target{Endpoint: "projects/p/branches/b/endpoints/"}, want: []string{"not an endpoint resource name"}, noAPI: true},
		{name: "instance as URL", target: Target{Instance: "postgres://h.example.com:5432/db"}, want: []string{"neither an instance name nor a hostname", "without scheme, port or path"}, noAPI: true},
		{
			name: "every bad option at once", target: Target{Instance: instName},
			opts:  []Option{WithUser(""), WithDatabase(""), WithMaxTokenAge(0), WithMintTimeout(-time.Second), WithLogger(nil)},
			want:  []string{"WithUser was given an empty name", "WithDatabase was given an empty name", "WithMaxTokenAge(0s) is not positive", "WithMintTimeout(-1s) is not positive", "WithLogger was given a nil logger"},
			noAPI: true,
		},
		{name: "unknown instance", target: Target{Instance: "nope"}, want: []string{`database instance "nope" does not exist`, "set Target.Instance"}, cause: apierr.ErrNotFound},
		{name: "unknown hostname", target: Target{Instance: "nope.example.com"}, want: []string{`no database instance has hostname "nope.example.com"`, "instances: " + instName}},
		{
			name: "stopped instance", target: Target{Instance: "sleepy"},
			setup: func(f *lakebasetest.Server) {
				f.AddInstance(lakebasetest.Instance{Name: "sleepy", State: lakebasetest.StateStopped, ReadWriteDNS: "s.example.com"})
			},
			want: []string{`database instance "sleepy" is stopped`, "start it"},
		},
		{
			name: "starting instance", target: Target{Instance: "s.example.com"},
			setup: func(f *lakebasetest.Server) {
				f.AddInstance(lakebasetest.Instance{Name: "sleepy", State: lakebasetest.StateStarting, ReadWriteDNS: "s.example.com"})
			},
			want: []string{`database instance "sleepy" is STARTING, not AVAILABLE`, "wait until it is available"},
		},
		{
			name: "instance without DNS", target: Target{Instance: "bare"},
			setup: func(f *lakebasetest.Server) { f.AddInstance(lakebasetest.Instance{Name: "bare"}) },
			want:  []string{`database instance "bare" has no hostname`},
		},
		{
			name: "instance not readable", target: Target{Instance: instName},
			setup: func(f *lakebasetest.Server) { f.Fail(lakebasetest.OpGetInstance, http.StatusForbidden, 0) },
			want:  []string{"may not read database instance", "check its credentials and permissions"}, cause: apierr.ErrPermissionDenied,
		},
		{
			name: "instances not listable", target: Target{Instance: instHost},
			setup: func(f *lakebasetest.Server) { f.Fail(lakebasetest.OpListInstances, http.StatusUnauthorized, 0) },
			want:  []string{"may not list database instances"}, cause: apierr.ErrUnauthenticated,
		},
		{name: "unknown endpoint", target: Target{Endpoint: "projects/my-project/branches/production/endpoints/nope"}, want: []string{"does not exist", "set Target.Endpoint to an existing endpoint"}, cause: apierr.ErrNotFound},
		{
			name: "endpoint without host", target: Target{Endpoint: "projects/p/branches/b/endpoints/new"},
			setup: func(f *lakebasetest.Server) {
				f.AddEndpoint(lakebasetest.Endpoint{Name: "projects/p/branches/b/endpoints/new"})
			},
			want: []string{`endpoint "projects/p/branches/b/endpoints/new" has no host`},
		},
		{
			name: "disabled endpoint", target: Target{Endpoint: "projects/p/branches/b/endpoints/off"},
			setup: func(f *lakebasetest.Server) {
				f.AddEndpoint(lakebasetest.Endpoint{Name: "projects/p/branches/b/endpoints/off", Host: "off.example.com", Disabled: true})
			},
			want: []string{"is disabled"},
		},
		{name: "unknown branch", target: Target{Project: "my-project", Branch: "nope"}, want: []string{`branch "projects/my-project/branches/nope" does not exist`}, cause: apierr.ErrNotFound},
		{
			name: "branch without READ_WRITE endpoint", target: Target{Project: "p", Branch: "ro"},
			setup: func(f *lakebasetest.Server) {
				f.AddEndpoint(lakebasetest.Endpoint{Name: "projects/p/branches/ro/endpoints/r1", Type: lakebasetest.EndpointReadOnly, Host: "r1.example.com"})
			},
			want: []string{"has no READ_WRITE endpoint", "projects/p/branches/ro/endpoints/r1 (ENDPOINT_TYPE_READ_ONLY)", "set Target.Endpoint"},
		},
		{
			name: "user without a name", target: Target{Instance: instName},
			setup: func(f *lakebasetest.Server) { f.SetUserName("") },
			want:  []string{"has no user name", "pass WithUser"},
		},
		{
			name: "user not readable", target: Target{Instance: instName},
			setup: func(f *lakebasetest.Server) { f.Fail(lakebasetest.OpCurrentUser, http.StatusForbidden, 0) },
			want:  []string{"may not read the current user", "pass WithUser"}, cause: apierr.ErrPermissionDenied,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := newFake(t)
			if tc.setup != nil {
				tc.setup(fake)
			}
			s, err := New(context.Background(), fake.WorkspaceClient(), tc.target, tc.opts...)
			if err == nil {
				s.Close()
				t.Fatal("New succeeded, want a *ConfigError")
			}
			if s != nil {
				t.Error("New returned a Source with its error")
			}
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("error %T %q is not a *ConfigError", err, err)
			}
			var retryable interface{ Temporary() bool }
			if errors.As(err, &retryable) && retryable.Temporary() {
				t.Errorf("configuration error %q says that retrying can help", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if !strings.HasPrefix(err.Error(), "lakebasecred: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
			if tc.cause != nil && !errors.Is(err, tc.cause) {
				t.Errorf("errors.Is(%q, %v) = false", err, tc.cause)
			}
			// Target.Validate finds the target's own problems, and no
			// other.
			verr := tc.target.Validate()
			if targetOnly := tc.noAPI && tc.opts == nil; targetOnly {
				if verr == nil || !errors.As(verr, &ce) || verr.Error() != err.Error() {
					t.Errorf("Validate = %v; want New's error %q", verr, err)
				}
			} else if tc.opts == nil && verr != nil {
				t.Errorf("Validate = %v; want nil for a target whose problem only the API shows", verr)
			}
			if tc.noAPI {
				for _, op := range lakebasetest.Ops {
					if n := fake.Calls(op); n != 0 {
						t.Errorf("%s called %d times for a problem found without the API", op, n)
					}
				}
			}
			if n := fake.MintCount(); n != 0 {
				t.Errorf("%d tokens minted", n)
			}
		})
	}
}

func TestNilClient(t *testing.T) {
	_, err := New(context.Background(), nil, Target{}, WithDatabase(""))
	var ce *ConfigError
	if !errors.As(err, &ce) || len(ce.Problems) != 3 {
		t.Fatalf("got %v, want a *ConfigError with 3 problems (client, target, database)", err)
	}
	if !strings.Contains(err.Error(), "the workspace client is nil") {
		t.Errorf("error %q does not name the nil client", err)
	}
}

// TestAPIFailureIsNotConfigError: a failing workspace API during New is
// not a configuration problem; the error names the operation and wraps the
// API error.
func TestAPIFailureIsNotConfigError(t *testing.T) {
	for _, tc := range []struct {
		name   string
		target Target
		op     lakebasetest.Op
		status int
		want   string
	}{
		{"get instance 500", Target{Instance: instName}, lakebasetest.OpGetInstance, http.StatusInternalServerError, `get database instance "my-instance"`},
		{"list instances 503", Target{Instance: instHost}, lakebasetest.OpListInstances, http.StatusServiceUnavailable, "list database instances"},
		{"get endpoint 500", Target{Endpoint: epName}, lakebasetest.OpGetEndpoint, http.StatusInternalServerError, "get endpoint"},
		{"list endpoints 500", Target{Project: "my-project", Branch: "production"}, lakebasetest.OpListEndpoints, http.StatusInternalServerError, "list the endpoints of branch"},
		{"me 500", Target{Instance: instName}, lakebasetest.OpCurrentUser, http.StatusInternalServerError, "get the current workspace user"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := newFake(t)
			fake.Fail(tc.op, tc.status, 0)
			_, err := New(context.Background(), fake.WorkspaceClient(), tc.target)
			if err == nil {
				t.Fatal("New succeeded")
			}
			var ce *ConfigError
			if errors.As(err, &ce) {
				t.Errorf("a failing API gave a *ConfigError: %v", err)
			}
			var apiErr *apierr.APIError
			if !errors.As(err, &apiErr) || apiErr.StatusCode != tc.status {
				t.Errorf("error %v does not wrap the API's %d", err, tc.status)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

// TestNewHonoursContext: New uses the caller's context for its API calls.
func TestNewHonoursContext(t *testing.T) {
	fake := newFake(t)
	fake.SetDelay(lakebasetest.OpGetInstance, time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := New(ctx, fake.WorkspaceClient(), Target{Instance: instName})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want the context's deadline error", err)
	}
}
