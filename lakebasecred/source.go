package lakebasecred

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/databricks/databricks-sdk-go"
	"github.com/databricks/databricks-sdk-go/apierr"
	"github.com/databricks/databricks-sdk-go/service/database"
	"github.com/databricks/databricks-sdk-go/service/iam"
	"github.com/databricks/databricks-sdk-go/service/postgres"
	"github.com/google/uuid"
)

// Target names the Lakebase database to connect to. Set exactly one kind:
//
//   - Instance: a provisioned instance's name ("my-instance"), or one of its
//     hostnames (read_write_dns or read_only_dns), which New finds by
//     listing the instances. A value with a dot is taken as a hostname.
//   - Endpoint: an autoscaling endpoint's resource name,
//     "projects/{project}/branches/{branch}/endpoints/{endpoint}".
//   - Project and Branch: an autoscaling project and branch (ids, or resource
//     names "projects/{project}" and "projects/{project}/branches/{branch}");
//     New picks the branch's READ_WRITE endpoint.
//
// Leading and trailing spaces are ignored.
type Target struct {
	Instance string
	Endpoint string
	Project  string
	Branch   string
}

var (
	_ fmt.Stringer   = (*Source)(nil)
	_ fmt.GoStringer = (*Source)(nil)
	_ slog.LogValuer = (*Source)(nil)
)

// Source knows where and as whom to connect to one Lakebase database, and
// hands out valid tokens to log in with. Host, User and Database are
// resolved once, by New. Token is cached; a Source is safe for concurrent
// use and meant to be shared by the whole process.
//
// # Goroutines
//
// A Source runs no goroutine while its cached token is fresh. A mint runs
// in one goroutine of its own, started by a Token call that needs it; it
// ends when the credential API answers or the mint timeout
// (WithMintTimeout) passes, whichever comes first. After a failed
// background refresh, that goroutine waits out the backoff and tries again,
// but never past the moment the cached token stops being served. Close ends
// it at once and waits for it; a Source that is simply dropped needs no
// Close, as its goroutine ends by itself within those bounds.
type Source struct {
	host     string
	pooled   string // the endpoint's pooled host; "" when none
	user     string
	database string
	target   string // `instance "name"` or `endpoint "projects/..."`
	mint     func(ctx context.Context) (mintResult, error)
	tel      *telemetry // spans and metrics of the mints (telemetry.go)

	maxAge      time.Duration
	mintTimeout time.Duration
	log         *slog.Logger
	now         func() time.Time
	after       func(time.Duration) <-chan time.Time

	// cur is the cached token; nil when there is none.
	cur atomic.Pointer[cached]
	// inflight is true while a mint runs (a lock-free look at flight).
	inflight atomic.Bool
	// notBeforeNano is notBefore in Unix nanoseconds (a lock-free look).
	notBeforeNano atomic.Int64

	mu        sync.Mutex
	flight    *flight   // the mint running now, nil when none
	failures  int       // mints failed in a row
	lastErr   error     // the last failure, nil after a success
	notBefore time.Time // no new mint before this, after a failure
	closed    bool

	ctx    context.Context // ended by Close; the parent of every mint
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New resolves target to a host, finds the user (w.CurrentUser.Me, unless
// WithUser is given) and returns a Source that mints tokens for it. It
// calls the workspace API with ctx; it mints no token (the first Token call
// does).
//
// Every problem with target and the options is reported at once as a
// *ConfigError, as are an instance or endpoint that does not exist, is not
// available or has no hostname, a branch without a READ_WRITE endpoint, and
// a workspace client not allowed to read them (401, 403). Other failures of
// the workspace API (network, 5xx) are returned wrapped, with the
// operation; retrying New may help.
func New(ctx context.Context, w *databricks.WorkspaceClient, target Target, opts ...Option) (*Source, error) {
	o := defaultOptions()
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	var problems []string
	if w == nil {
		problems = append(problems, "the workspace client is nil: pass a *databricks.WorkspaceClient (databricks.NewWorkspaceClient())")
	}
	t, targetProblems := parseTarget(target)
	problems = append(problems, targetProblems...)
	problems = append(problems, o.problems...)
	if len(problems) > 0 {
		return nil, configErr(nil, problems...)
	}

	s := &Source{
		user:        o.user,
		database:    o.database,
		maxAge:      o.maxAge,
		mintTimeout: o.mintTimeout,
		log:         o.logger,
		now:         o.now,
		after:       o.after,
		tel:         o.telemetry(),
	}
	var err error
	switch {
	case t.instance != "":
		err = s.resolveInstance(ctx, w, t.instance)
	case t.endpoint != "":
		err = s.resolveEndpoint(ctx, w, t.endpoint)
	default:
		err = s.resolveBranch(ctx, w, t.project, t.branch)
	}
	if err != nil {
		return nil, err
	}
	if !o.userSet {
		me, err := w.CurrentUser.Me(ctx, iam.MeRequest{})
		switch {
		case isDenied(err):
			return nil, configErr(err, "the workspace client may not read the current user: check its credentials, or pass WithUser with the role to log in as")
		case err != nil:
			return nil, fmt.Errorf("lakebasecred: get the current workspace user: %w", err)
		case me.UserName == "":
			return nil, configErr(nil, "the current workspace user has no user name: pass WithUser with the role to log in as")
		}
		s.user = me.UserName
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// Validate reports the problems with t that New reports before it calls
// the workspace API (no target, more than one kind of target, a malformed
// endpoint, project or branch), as a *ConfigError; nil when there are none.
// It lets a program check its settings before it authenticates.
func (t Target) Validate() error {
	if _, problems := parseTarget(t); len(problems) > 0 {
		return configErr(nil, problems...)
	}
	return nil
}

type parsedTarget struct {
	instance, endpoint, project, branch string
}

const endpointForm = "projects/{project}/branches/{branch}/endpoints/{endpoint}"

func parseTarget(in Target) (parsedTarget, []string) {
	t := parsedTarget{
		instance: strings.TrimSpace(in.Instance),
		endpoint: strings.TrimSpace(in.Endpoint),
		project:  strings.TrimSpace(in.Project),
		branch:   strings.TrimSpace(in.Branch),
	}
	autoscaling := t.endpoint != "" || t.project != "" || t.branch != ""
	switch {
	case t.instance == "" && !autoscaling:
		return t, []string{"no target: set Target.Instance to a provisioned instance's name or hostname, or Target.Endpoint to an autoscaling endpoint (" + endpointForm + "), or Target.Project and Target.Branch"}
	case t.instance != "" && autoscaling:
		return t, []string{"Target.Instance (a provisioned instance) is set together with Target.Endpoint, Target.Project or Target.Branch (an autoscaling endpoint): set only one kind of target"}
	case t.instance != "":
		if strings.ContainsAny(t.instance, "/:@ \t") {
			return t, []string{fmt.Sprintf("Target.Instance %q is neither an instance name nor a hostname: set it to the instance's name or its read_write_dns hostname, without scheme, port or path", t.instance)}
		}
		return t, nil
	case t.endpoint != "" && (t.project != "" || t.branch != ""):
		return t, []string{"Target.Endpoint is set together with Target.Project or Target.Branch: set either Target.Endpoint, or Target.Project and Target.Branch"}
	case t.endpoint != "":
		if _, _, ok := splitEndpoint(t.endpoint); !ok {
			return t, []string{fmt.Sprintf("Target.Endpoint %q is not an endpoint resource name: set it to %s", t.endpoint, endpointForm)}
		}
		return t, nil
	}

	var problems []string
	if t.project == "" {
		problems = append(problems, "Target.Branch is set without Target.Project: set Target.Project too (or Target.Endpoint instead)")
	} else {
		p := strings.TrimPrefix(t.project, "projects/")
		if p == "" || strings.Contains(p, "/") {
			problems = append(problems, fmt.Sprintf("Target.Project %q is not a project: set it to the project id, or projects/{project}", t.project))
		}
		t.project = p
	}
	switch {
	case t.branch == "":
		problems = append(problems, "Target.Project is set without Target.Branch: set Target.Branch too (or Target.Endpoint instead)")
	case strings.HasPrefix(t.branch, "projects/"):
		parts := strings.Split(t.branch, "/")
		if len(parts) != 4 || parts[1] == "" || parts[2] != "branches" || parts[3] == "" {
			problems = append(problems, fmt.Sprintf("Target.Branch %q is not a branch: set it to the branch id, or projects/{project}/branches/{branch}", t.branch))
		} else if t.project != "" && parts[1] != t.project {
			problems = append(problems, fmt.Sprintf("Target.Branch %q belongs to project %q, not to Target.Project %q: make them agree", t.branch, parts[1], t.project))
		} else {
			t.branch = parts[3]
		}
	case strings.Contains(t.branch, "/"):
		problems = append(problems, fmt.Sprintf("Target.Branch %q is not a branch: set it to the branch id, or projects/{project}/branches/{branch}", t.branch))
	}
	return t, problems
}

// splitEndpoint checks an endpoint resource name.
func splitEndpoint(name string) (project, branch string, ok bool) {
	parts := strings.Split(name, "/")
	if len(parts) != 6 || parts[0] != "projects" || parts[2] != "branches" || parts[4] != "endpoints" ||
		parts[1] == "" || parts[3] == "" || parts[5] == "" {
		return "", "", false
	}
	return parts[1], parts[3], true
}

func isDenied(err error) bool {
	return errors.Is(err, apierr.ErrPermissionDenied) || errors.Is(err, apierr.ErrUnauthenticated)
}

func (s *Source) resolveInstance(ctx context.Context, w *databricks.WorkspaceClient, nameOrHost string) error {
	var inst *database.DatabaseInstance
	if strings.Contains(nameOrHost, ".") {
		// Page by page, so that no page after the match is fetched.
		it := w.Database.ListDatabaseInstances(ctx, database.ListDatabaseInstancesRequest{})
		var names []string
		for inst == nil && it.HasNext(ctx) {
			in, err := it.Next(ctx)
			switch {
			case isDenied(err):
				return configErr(err, fmt.Sprintf("the workspace client may not list database instances (to find hostname %q): check its credentials, or set Target.Instance to the instance's name", nameOrHost))
			case err != nil:
				return fmt.Errorf("lakebasecred: list database instances to find hostname %q: %w", nameOrHost, err)
			}
			names = append(names, in.Name)
			if strings.EqualFold(in.ReadWriteDns, nameOrHost) || strings.EqualFold(in.ReadOnlyDns, nameOrHost) {
				inst = &in
			}
		}
		if inst == nil {
			sort.Strings(names)
			return configErr(nil, fmt.Sprintf("no database instance has hostname %q (read_write_dns or read_only_dns): set Target.Instance to an instance's name or hostname (instances: %s)", nameOrHost, listOrNone(names)))
		}
	} else {
		got, err := w.Database.GetDatabaseInstance(ctx, database.GetDatabaseInstanceRequest{Name: nameOrHost})
		switch {
		case apierr.IsMissing(err):
			return configErr(err, fmt.Sprintf("database instance %q does not exist: set Target.Instance to an existing instance's name or hostname", nameOrHost))
		case isDenied(err):
			return configErr(err, fmt.Sprintf("the workspace client may not read database instance %q: check its credentials and permissions", nameOrHost))
		case err != nil:
			return fmt.Errorf("lakebasecred: get database instance %q: %w", nameOrHost, err)
		}
		inst = got
		if inst.Name == "" {
			inst.Name = nameOrHost
		}
	}

	state := string(inst.State)
	switch {
	case inst.Stopped || inst.EffectiveStopped || state == string(database.DatabaseInstanceStateStopped):
		return configErr(nil, fmt.Sprintf("database instance %q is stopped: start it, then try again", inst.Name))
	case state != "" && state != string(database.DatabaseInstanceStateAvailable) && state != string(database.DatabaseInstanceStateUpdating):
		return configErr(nil, fmt.Sprintf("database instance %q is %s, not AVAILABLE: wait until it is available (or start it), then try again", inst.Name, state))
	}
	host := inst.ReadWriteDns
	if host == "" {
		host = inst.ReadOnlyDns
	}
	if host == "" {
		return configErr(nil, fmt.Sprintf("database instance %q has no hostname (read_write_dns and read_only_dns are empty): wait until it is available, then try again", inst.Name))
	}
	name := inst.Name
	s.host = host
	s.target = fmt.Sprintf("instance %q", name)
	s.mint = func(ctx context.Context) (mintResult, error) {
		cred, err := w.Database.GenerateDatabaseCredential(ctx, database.GenerateDatabaseCredentialRequest{
			InstanceNames: []string{name},
			RequestId:     uuid.NewString(),
		})
		if err != nil {
			return mintResult{}, err
		}
		r := mintResult{token: cred.Token}
		if cred.ExpirationTime != "" {
			exp, perr := time.Parse(time.RFC3339Nano, cred.ExpirationTime)
			if perr != nil {
				r.expiryNote = fmt.Sprintf("expiration_time %q is not an RFC 3339 time", cred.ExpirationTime)
			} else {
				r.expiry = exp
			}
		}
		return r, nil
	}
	return nil
}

func listOrNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	const most = 20
	if len(names) > most {
		return strings.Join(names[:most], ", ") + fmt.Sprintf(" and %d more", len(names)-most)
	}
	return strings.Join(names, ", ")
}

func (s *Source) resolveEndpoint(ctx context.Context, w *databricks.WorkspaceClient, name string) error {
	ep, err := w.Postgres.GetEndpoint(ctx, postgres.GetEndpointRequest{Name: name})
	switch {
	case apierr.IsMissing(err):
		return configErr(err, fmt.Sprintf("endpoint %q does not exist: set Target.Endpoint to an existing endpoint (%s), or set Target.Project and Target.Branch", name, endpointForm))
	case isDenied(err):
		return configErr(err, fmt.Sprintf("the workspace client may not read endpoint %q: check its credentials and permissions", name))
	case err != nil:
		return fmt.Errorf("lakebasecred: get endpoint %q: %w", name, err)
	}
	if ep.Name == "" {
		ep.Name = name
	}
	return s.useEndpoint(w, ep)
}

func (s *Source) resolveBranch(ctx context.Context, w *databricks.WorkspaceClient, project, branch string) error {
	parent := "projects/" + project + "/branches/" + branch
	// Page by page, so that no page after the READ_WRITE endpoint is fetched.
	it := w.Postgres.ListEndpoints(ctx, postgres.ListEndpointsRequest{Parent: parent})
	var others []string
	for it.HasNext(ctx) {
		got, err := it.Next(ctx)
		switch {
		case apierr.IsMissing(err):
			return configErr(err, fmt.Sprintf("branch %q does not exist: set Target.Project and Target.Branch to an existing project and branch", parent))
		case isDenied(err):
			return configErr(err, fmt.Sprintf("the workspace client may not list the endpoints of branch %q: check its credentials and permissions", parent))
		case err != nil:
			return fmt.Errorf("lakebasecred: list the endpoints of branch %q: %w", parent, err)
		}
		ep := &got
		if ep.Name == "" {
			id := ep.EndpointId
			if id == "" && ep.Status != nil {
				id = ep.Status.EndpointId
			}
			ep.Name = parent + "/endpoints/" + id
		}
		if endpointType(ep) == postgres.EndpointTypeEndpointTypeReadWrite {
			return s.useEndpoint(w, ep)
		}
		others = append(others, fmt.Sprintf("%s (%s)", ep.Name, endpointType(ep)))
	}
	return configErr(nil, fmt.Sprintf("branch %q has no READ_WRITE endpoint (endpoints: %s): add one, or set Target.Endpoint to the endpoint to use", parent, listOrNone(others)))
}

func endpointType(ep *postgres.Endpoint) postgres.EndpointType {
	if ep.Status != nil && ep.Status.EndpointType != "" {
		return ep.Status.EndpointType
	}
	if ep.Spec != nil {
		return ep.Spec.EndpointType
	}
	return ""
}

func (s *Source) useEndpoint(w *databricks.WorkspaceClient, ep *postgres.Endpoint) error {
	if ep.Status != nil && ep.Status.Disabled {
		return configErr(nil, fmt.Sprintf("endpoint %q is disabled: enable it, or pick another endpoint", ep.Name))
	}
	host, pooled := "", ""
	if ep.Status != nil && ep.Status.Hosts != nil {
		host = ep.Status.Hosts.Host
		pooled = ep.Status.Hosts.ReadWritePooledHost
		if endpointType(ep) == postgres.EndpointTypeEndpointTypeReadOnly {
			pooled = ep.Status.Hosts.ReadOnlyPooledHost
		}
	}
	if host == "" {
		return configErr(nil, fmt.Sprintf("endpoint %q has no host (status.hosts.host is empty): wait until it is ready, then try again", ep.Name))
	}
	name := ep.Name
	s.host = host
	s.pooled = pooled
	s.target = fmt.Sprintf("endpoint %q", name)
	s.mint = func(ctx context.Context) (mintResult, error) {
		cred, err := w.Postgres.GenerateDatabaseCredential(ctx, postgres.GenerateDatabaseCredentialRequest{Endpoint: name})
		if err != nil {
			return mintResult{}, err
		}
		r := mintResult{token: cred.Token}
		if cred.ExpireTime != nil {
			r.expiry = cred.ExpireTime.AsTime()
		}
		return r, nil
	}
	return nil
}

// Host returns the hostname to connect to.
func (s *Source) Host() string { return s.host }

// PooledHost returns the hostname of the connection pooler in front of the
// database (PgBouncer in transaction mode), as the API reports it for an
// autoscaling endpoint: read_write_pooled_host (read_only_pooled_host for a
// READ_ONLY endpoint). It is "" when there is none, and for a provisioned
// instance. connector.WithPooledHost connects to it.
func (s *Source) PooledHost() string { return s.pooled }

// User returns the PostgreSQL role to log in as.
func (s *Source) User() string { return s.user }

// Database returns the database name.
func (s *Source) Database() string { return s.database }

// String describes the Source (target, host, user, database); never a
// token.
func (s *Source) String() string {
	return fmt.Sprintf("lakebasecred.Source{target: %s, host: %q, user: %q, database: %q}", s.target, s.host, s.user, s.database)
}

// GoString is String, so that %#v shows no internals.
func (s *Source) GoString() string { return s.String() }

// LogValue lets slog show the Source as a group of its target, host, user
// and database; never a token.
func (s *Source) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("target", s.target),
		slog.String("host", s.host),
		slog.String("user", s.user),
		slog.String("database", s.database),
	)
}
