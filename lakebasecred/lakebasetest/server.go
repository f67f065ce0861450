package lakebasetest

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/databricks/databricks-sdk-go"
	"github.com/databricks/databricks-sdk-go/config"
)

// Op names one operation of the fake control plane, for counters, injected
// failures and delays.
type Op string

// The operations the fake serves, one per REST path.
const (
	// OpGetInstance is GET /api/2.0/database/instances/{name}
	// (w.Database.GetDatabaseInstance).
	OpGetInstance Op = "database.GetDatabaseInstance"
	// OpListInstances is GET /api/2.0/database/instances
	// (w.Database.ListDatabaseInstances); each page is one call.
	OpListInstances Op = "database.ListDatabaseInstances"
	// OpDatabaseCredential is POST /api/2.0/database/credentials
	// (w.Database.GenerateDatabaseCredential): a token for a provisioned
	// instance.
	OpDatabaseCredential Op = "database.GenerateDatabaseCredential"
	// OpCurrentUser is GET /api/2.0/preview/scim/v2/Me (w.CurrentUser.Me).
	OpCurrentUser Op = "iam.CurrentUser.Me"
	// OpGetEndpoint is GET /api/2.0/postgres/{projects/p/branches/b/endpoints/e}
	// (w.Postgres.GetEndpoint).
	OpGetEndpoint Op = "postgres.GetEndpoint"
	// OpListEndpoints is GET /api/2.0/postgres/{projects/p/branches/b}/endpoints
	// (w.Postgres.ListEndpoints); each page is one call.
	OpListEndpoints Op = "postgres.ListEndpoints"
	// OpPostgresCredential is POST /api/2.0/postgres/credentials
	// (w.Postgres.GenerateDatabaseCredential): a token for an autoscaling
	// endpoint.
	OpPostgresCredential Op = "postgres.GenerateDatabaseCredential"
)

// Ops lists every operation, in a stable order.
var Ops = []Op{
	OpGetInstance, OpListInstances, OpDatabaseCredential, OpCurrentUser,
	OpGetEndpoint, OpListEndpoints, OpPostgresCredential,
}

// Instance states, as the database API spells them.
const (
	StateAvailable = "AVAILABLE"
	StateStarting  = "STARTING"
	StateStopped   = "STOPPED"
	StateUpdating  = "UPDATING"
	StateDeleting  = "DELETING"
)

// Endpoint types, as the postgres API spells them.
const (
	EndpointReadWrite = "ENDPOINT_TYPE_READ_WRITE"
	EndpointReadOnly  = "ENDPOINT_TYPE_READ_ONLY"
)

// NoExpiry, given to SetTokenLifetime, makes the credential APIs answer
// without an expiry time.
const NoExpiry time.Duration = 0

// DefaultTokenLifetime is the lifetime of minted tokens until SetTokenLifetime
// changes it: one hour, as on Lakebase.
const DefaultTokenLifetime = time.Hour

// DefaultUserName is the current user's name until SetUserName changes it.
const DefaultUserName = "lakebase-user@example.com"

// PAT is the personal access token the fake accepts; the clients from
// WorkspaceClient and Config send it. Any other Authorization is refused
// with 401.
const PAT = "dapi-lakebasetest"

// Instance is a provisioned database instance of the fake.
type Instance struct {
	Name string
	// State is one of the State* constants; empty means StateAvailable.
	State string
	// ReadWriteDNS and ReadOnlyDNS are the hostnames the API reports.
	ReadWriteDNS string
	ReadOnlyDNS  string
}

// Endpoint is an autoscaling endpoint of the fake.
type Endpoint struct {
	// Name is the resource name projects/{p}/branches/{b}/endpoints/{e}.
	Name string
	// Type is EndpointReadWrite or EndpointReadOnly; empty means
	// EndpointReadWrite.
	Type string
	// Host is what the API reports as status.hosts.host; may be empty.
	Host string
	// PooledHost is what the API reports as the endpoint's pooled host:
	// status.hosts.read_write_pooled_host for a READ_WRITE endpoint,
	// status.hosts.read_only_pooled_host for a READ_ONLY one. Empty means
	// none.
	PooledHost string
	// Disabled is reported as status.disabled.
	Disabled bool
}

// Mint is one token handed out by a credential API.
type Mint struct {
	// Op is OpDatabaseCredential or OpPostgresCredential.
	Op Op
	// Target is the instance name (provisioned) or the endpoint resource
	// name (autoscaling) the token was asked for.
	Target string
	// User is the current user's name when the token was minted: the role
	// the token logs in as.
	User string
	// Token is the token itself: random, distinct from every other.
	Token string
	// ExpireTime is the expiry the API reports; zero when the token lifetime
	// is NoExpiry.
	ExpireTime time.Time
	// RequestID is the request_id the client sent (provisioned only).
	RequestID string
}

// String describes the mint without its token, so that printing a Mint in a
// test log does not spread the secret.
func (m Mint) String() string {
	exp := "none"
	if !m.ExpireTime.IsZero() {
		exp = m.ExpireTime.UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf("lakebasetest.Mint{Op: %s, Target: %q, User: %q, ExpireTime: %s, Token: [redacted]}", m.Op, m.Target, m.User, exp)
}

// GoString is String, for %#v.
func (m Mint) GoString() string { return m.String() }

// AlterRoleSQL returns the statement that makes the token the password of
// the role named m.User on a real PostgreSQL, valid until the token's expiry
// (or forever with no expiry), so that an expired token stops new logins
// there as it does on Lakebase:
//
//	ALTER ROLE "user@example.com" WITH LOGIN PASSWORD '...' VALID UNTIL '2026-01-02T15:04:05.999999Z'
//
// The role must exist. PostgreSQL keeps one password per role, so a new mint
// replaces the previous token there, unlike Lakebase where each token is
// valid until it expires.
func (m Mint) AlterRoleSQL() string {
	until := "infinity"
	if !m.ExpireTime.IsZero() {
		until = m.ExpireTime.UTC().Format("2006-01-02T15:04:05.999999Z")
	}
	return "ALTER ROLE " + quoteIdent(m.User) + " WITH LOGIN PASSWORD " + quoteLiteral(m.Token) + " VALID UNTIL " + quoteLiteral(until)
}

func quoteIdent(s string) string {
	return `"` + strings.ReplaceAll(strings.ReplaceAll(s, "\x00", ""), `"`, `""`) + `"`
}

func quoteLiteral(s string) string {
	return `'` + strings.ReplaceAll(strings.ReplaceAll(s, "\x00", ""), `'`, `''`) + `'`
}

// Option configures a Server.
type Option func(*Server)

// WithClock makes the fake compute token expiry times from now instead of
// time.Now, for tests that drive time themselves.
func WithClock(now func() time.Time) Option {
	return func(s *Server) { s.now = now }
}

// WithPageSize caps the number of items in each page of the list operations
// (the client's page_size can only make it smaller). The default is 100.
func WithPageSize(n int) Option {
	return func(s *Server) {
		if n > 0 {
			s.pageSize = n
		}
	}
}

// Server is a fake Databricks workspace serving the Lakebase REST paths from
// an httptest server on 127.0.0.1. Its methods are safe for concurrent use,
// also while requests are being served.
type Server struct {
	srv       *httptest.Server
	transport *http.Transport
	closing   chan struct{}
	now       func() time.Time
	pageSize  int

	mu        sync.Mutex
	instances map[string]Instance
	endpoints map[string]Endpoint
	userName  string
	lifetime  time.Duration
	hook      func(Mint) error
	calls     map[Op]int
	failures  map[Op]*failure
	delays    map[Op]time.Duration
	mints     []Mint
	issued    map[string]Mint // by token
	byRequest map[string]Mint // by request_id, for idempotent retries
}

type failure struct {
	status    int
	remaining int // < 0: until cleared
}

// NewServer starts a fake control plane. It is closed, and every request
// still being served is ended, when t and its subtests finish (t.Cleanup).
func NewServer(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s := &Server{
		closing:   make(chan struct{}),
		now:       time.Now,
		pageSize:  100,
		instances: map[string]Instance{},
		endpoints: map[string]Endpoint{},
		userName:  DefaultUserName,
		lifetime:  DefaultTokenLifetime,
		calls:     map[Op]int{},
		failures:  map[Op]*failure{},
		delays:    map[Op]time.Duration{},
		issued:    map[string]Mint{},
		byRequest: map[string]Mint{},
	}
	for _, o := range opts {
		o(s)
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	s.transport = &http.Transport{}
	t.Cleanup(s.close)
	return s
}

func (s *Server) close() {
	close(s.closing)
	s.srv.Close()
	s.transport.CloseIdleConnections()
}

// URL returns the base URL of the fake workspace (http://127.0.0.1:port).
func (s *Server) URL() string { return s.srv.URL }

// Config returns a new SDK configuration pointed at the fake: PAT
// authentication with the token the fake expects, no environment variables
// or configuration files read, no host metadata lookup, no client-side rate
// limit, and the SDK's retry loop for 429 and 503 answers limited to one
// second (its first backoff is longer, so such an answer surfaces after
// about a second instead of minutes). Change it before passing it to
// databricks.NewWorkspaceClient, e.g. set RetryTimeoutSeconds to 0 for the
// SDK's default of several minutes.
func (s *Server) Config() *databricks.Config {
	return &databricks.Config{
		Host:                 s.srv.URL,
		Token:                PAT,
		AuthType:             "pat",
		Credentials:          config.PatCredentials{},
		Loaders:              []config.Loader{noLoader{}},
		HostMetadataResolver: func(context.Context, string) (*config.HostMetadata, error) { return nil, nil },
		RetryTimeoutSeconds:  1,
		HTTPTimeoutSeconds:   30,
		RateLimitPerSecond:   1_000_000,
		HTTPTransport:        s.transport,
	}
}

// WorkspaceClient returns a new client pointed at the fake, built from
// Config. It reaches no network beyond the fake.
func (s *Server) WorkspaceClient() *databricks.WorkspaceClient {
	w, err := databricks.NewWorkspaceClient(s.Config())
	if err != nil {
		// The configuration is fixed and complete: this cannot happen
		// unless the SDK changes its rules.
		panic("lakebasetest: new workspace client: " + err.Error())
	}
	return w
}

// noLoader keeps the SDK from reading DATABRICKS_* variables and
// ~/.databrickscfg, so that the machine's own settings cannot leak into tests.
type noLoader struct{}

func (noLoader) Name() string                   { return "lakebasetest" }
func (noLoader) Configure(*config.Config) error { return nil }

// AddInstance adds a provisioned instance, or replaces the one of the same
// name (to change its state or hostnames).
func (s *Server) AddInstance(in Instance) {
	if in.State == "" {
		in.State = StateAvailable
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.instances[in.Name] = in
}

// RemoveInstance removes a provisioned instance; later calls naming it get
// 404.
func (s *Server) RemoveInstance(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.instances, name)
}

// AddEndpoint adds an autoscaling endpoint, or replaces the one of the same
// name. Its project and branch exist as long as they have an endpoint.
func (s *Server) AddEndpoint(ep Endpoint) {
	if ep.Type == "" {
		ep.Type = EndpointReadWrite
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.endpoints[ep.Name] = ep
}

// RemoveEndpoint removes an autoscaling endpoint.
func (s *Server) RemoveEndpoint(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.endpoints, name)
}

// SetUserName sets the current user's name, returned by SCIM Me and
// recorded in each Mint. Empty makes Me answer without a userName.
func (s *Server) SetUserName(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.userName = name
}

// SetTokenLifetime sets the lifetime of the tokens minted from now on. With
// NoExpiry (0) the credential APIs return no expiry time. A negative
// lifetime returns tokens that have already expired.
func (s *Server) SetTokenLifetime(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lifetime = d
}

// OnMint sets a hook called with every token minted, before the answer is
// sent, so that a test can make the token a real role's password first (see
// Mint.AlterRoleSQL). When the hook returns an error, the mint fails with
// HTTP 500 (error_code INTERNAL_ERROR, which the SDK does not retry) and
// the token is never handed out. The hook may be called from several
// goroutines at once, and may call the Server's methods. nil removes it.
func (s *Server) OnMint(hook func(Mint) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hook = hook
}

// Calls returns how many requests of op the fake has received, failed ones
// included.
func (s *Server) Calls(op Op) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[op]
}

// Mints returns every token handed out so far, oldest first.
func (s *Server) Mints() []Mint {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Mint(nil), s.mints...)
}

// MintCount returns how many tokens have been handed out so far.
func (s *Server) MintCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.mints)
}

// Lookup reports the mint of a token handed out by the fake, so that an
// app's test can check that a password it used is a real token.
func (s *Server) Lookup(token string) (Mint, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.issued[token]
	return m, ok
}

// Fail makes the next times calls of op answer with HTTP status (and a
// Databricks error body); times <= 0 fails every call until ClearFailures.
// 429 and 503 surface after about a second with the clients of Config (the
// SDK's retry loop); other statuses surface at once. A call
// that fails is still counted by Calls.
func (s *Server) Fail(op Op, status int, times int) {
	if times <= 0 {
		times = -1
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures[op] = &failure{status: status, remaining: times}
}

// ClearFailures removes the failures injected by Fail, for the given
// operations or, with none given, for all.
func (s *Server) ClearFailures(ops ...Op) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(ops) == 0 {
		clear(s.failures)
		return
	}
	for _, op := range ops {
		delete(s.failures, op)
	}
}

// SetDelay makes every call of op wait d before it is answered (0 removes
// the delay). The wait ends early when the client gives up or the server
// closes.
func (s *Server) SetDelay(op Op, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d <= 0 {
		delete(s.delays, op)
		return
	}
	s.delays[op] = d
}

// route maps a request to its operation and the resource name in its path.
func route(r *http.Request) (Op, string, bool) {
	p := r.URL.Path
	switch {
	case r.Method == http.MethodGet && p == "/api/2.0/preview/scim/v2/Me":
		return OpCurrentUser, "", true
	case r.Method == http.MethodGet && p == "/api/2.0/database/instances":
		return OpListInstances, "", true
	case r.Method == http.MethodGet && strings.HasPrefix(p, "/api/2.0/database/instances/"):
		name := strings.TrimPrefix(p, "/api/2.0/database/instances/")
		if name == "" || strings.Contains(name, "/") {
			return "", "", false
		}
		return OpGetInstance, name, true
	case r.Method == http.MethodPost && p == "/api/2.0/database/credentials":
		return OpDatabaseCredential, "", true
	case r.Method == http.MethodPost && p == "/api/2.0/postgres/credentials":
		return OpPostgresCredential, "", true
	case r.Method == http.MethodGet && strings.HasPrefix(p, "/api/2.0/postgres/"):
		name := strings.TrimPrefix(p, "/api/2.0/postgres/")
		parts := strings.Split(name, "/")
		switch {
		case len(parts) == 5 && parts[0] == "projects" && parts[2] == "branches" && parts[4] == "endpoints":
			return OpListEndpoints, strings.TrimSuffix(name, "/endpoints"), true
		case len(parts) == 6 && parts[0] == "projects" && parts[2] == "branches" && parts[4] == "endpoints":
			return OpGetEndpoint, name, true
		}
	}
	return "", "", false
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+PAT {
		writeError(w, http.StatusUnauthorized, "UNAUTHENTICATED", "lakebasetest: missing or wrong Authorization header")
		return
	}
	op, name, ok := route(r)
	if !ok {
		writeError(w, http.StatusNotFound, "ENDPOINT_NOT_FOUND", fmt.Sprintf("lakebasetest: no API at %s %s", r.Method, r.URL.Path))
		return
	}

	s.mu.Lock()
	s.calls[op]++
	delay := s.delays[op]
	status := 0
	if f := s.failures[op]; f != nil {
		status = f.status
		if f.remaining > 0 {
			f.remaining--
			if f.remaining == 0 {
				delete(s.failures, op)
			}
		}
	}
	s.mu.Unlock()

	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		case <-s.closing:
			t.Stop()
			writeError(w, http.StatusServiceUnavailable, "TEMPORARILY_UNAVAILABLE", "lakebasetest: server closed")
			return
		}
	}
	if status != 0 {
		writeError(w, status, errorCode(status), fmt.Sprintf("lakebasetest: injected failure of %s", op))
		return
	}

	switch op {
	case OpCurrentUser:
		s.serveMe(w)
	case OpGetInstance:
		s.serveGetInstance(w, name)
	case OpListInstances:
		s.serveListInstances(w, r)
	case OpDatabaseCredential:
		s.serveDatabaseCredential(w, r)
	case OpGetEndpoint:
		s.serveGetEndpoint(w, name)
	case OpListEndpoints:
		s.serveListEndpoints(w, r, name)
	case OpPostgresCredential:
		s.servePostgresCredential(w, r)
	}
}

func errorCode(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "INVALID_PARAMETER_VALUE"
	case http.StatusUnauthorized:
		return "UNAUTHENTICATED"
	case http.StatusForbidden:
		return "PERMISSION_DENIED"
	case http.StatusNotFound:
		return "RESOURCE_DOES_NOT_EXIST"
	case http.StatusConflict:
		return "RESOURCE_CONFLICT"
	case http.StatusTooManyRequests:
		return "REQUEST_LIMIT_EXCEEDED"
	case http.StatusServiceUnavailable:
		return "TEMPORARILY_UNAVAILABLE"
	case http.StatusGatewayTimeout:
		return "DEADLINE_EXCEEDED"
	default:
		return "INTERNAL_ERROR"
	}
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]string{"error_code": code, "message": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status, body = http.StatusInternalServerError, []byte(`{"error_code":"INTERNAL_ERROR","message":"lakebasetest: encode answer"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func (s *Server) serveMe(w http.ResponseWriter) {
	s.mu.Lock()
	user := s.userName
	s.mu.Unlock()
	body := map[string]any{
		"id":      "1000",
		"active":  true,
		"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:User"},
	}
	if user != "" {
		body["userName"] = user
		body["emails"] = []map[string]any{{"value": user, "primary": true}}
	}
	writeJSON(w, http.StatusOK, body)
}

func instanceJSON(in Instance) map[string]any {
	m := map[string]any{
		"name":       in.Name,
		"state":      in.State,
		"uid":        "uid-" + in.Name,
		"capacity":   "CU_1",
		"pg_version": "PG_VERSION_16",
	}
	if in.ReadWriteDNS != "" {
		m["read_write_dns"] = in.ReadWriteDNS
	}
	if in.ReadOnlyDNS != "" {
		m["read_only_dns"] = in.ReadOnlyDNS
	}
	if in.State == StateStopped {
		m["stopped"] = true
		m["effective_stopped"] = true
	}
	return m
}

func (s *Server) serveGetInstance(w http.ResponseWriter, name string) {
	s.mu.Lock()
	in, ok := s.instances[name]
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "RESOURCE_DOES_NOT_EXIST", fmt.Sprintf("Database instance '%s' does not exist.", name))
		return
	}
	writeJSON(w, http.StatusOK, instanceJSON(in))
}

// page cuts names (sorted) into the page the request asks for.
func (s *Server) page(r *http.Request, names []string) ([]string, string, error) {
	sort.Strings(names)
	size := s.pageSize
	if v := r.URL.Query().Get("page_size"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return nil, "", fmt.Errorf("page_size %q is not a non-negative number", v)
		}
		if n > 0 && n < size {
			size = n
		}
	}
	start := 0
	if tok := r.URL.Query().Get("page_token"); tok != "" {
		n, err := strconv.Atoi(tok)
		if err != nil || n < 0 || n > len(names) {
			return nil, "", fmt.Errorf("page_token %q is not valid", tok)
		}
		start = n
	}
	end := min(start+size, len(names))
	next := ""
	if end < len(names) {
		next = strconv.Itoa(end)
	}
	return names[start:end], next, nil
}

func (s *Server) serveListInstances(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	names := make([]string, 0, len(s.instances))
	for n := range s.instances {
		names = append(names, n)
	}
	snapshot := make(map[string]Instance, len(s.instances))
	for n, in := range s.instances {
		snapshot[n] = in
	}
	s.mu.Unlock()
	pageNames, next, err := s.page(r, names)
	if err != nil {
		writeError(w, http.StatusBadRequest, "INVALID_PARAMETER_VALUE", err.Error())
		return
	}
	items := make([]map[string]any, 0, len(pageNames))
	for _, n := range pageNames {
		items = append(items, instanceJSON(snapshot[n]))
	}
	body := map[string]any{"database_instances": items}
	if next != "" {
		body["next_page_token"] = next
	}
	writeJSON(w, http.StatusOK, body)
}

func endpointJSON(ep Endpoint) map[string]any {
	parent, id := ep.Name, ep.Name
	if i := strings.LastIndex(ep.Name, "/endpoints/"); i >= 0 {
		parent, id = ep.Name[:i], ep.Name[i+len("/endpoints/"):]
	}
	status := map[string]any{
		"endpoint_id":   id,
		"endpoint_type": ep.Type,
		"current_state": "ACTIVE",
	}
	if ep.Disabled {
		status["disabled"] = true
		status["current_state"] = "IDLE"
	}
	if ep.Host != "" || ep.PooledHost != "" {
		hosts := map[string]any{}
		if ep.Host != "" {
			hosts["host"] = ep.Host
		}
		if ep.PooledHost != "" {
			if ep.Type == EndpointReadOnly {
				hosts["read_only_pooled_host"] = ep.PooledHost
			} else {
				hosts["read_write_pooled_host"] = ep.PooledHost
			}
		}
		status["hosts"] = hosts
	}
	return map[string]any{
		"name":        ep.Name,
		"parent":      parent,
		"endpoint_id": id,
		"uid":         "uid-" + id,
		"spec":        map[string]any{"endpoint_type": ep.Type},
		"status":      status,
	}
}

func (s *Server) serveGetEndpoint(w http.ResponseWriter, name string) {
	s.mu.Lock()
	ep, ok := s.endpoints[name]
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "NOT_FOUND", fmt.Sprintf("endpoint %q not found", name))
		return
	}
	writeJSON(w, http.StatusOK, endpointJSON(ep))
}

func (s *Server) serveListEndpoints(w http.ResponseWriter, r *http.Request, branch string) {
	prefix := branch + "/endpoints/"
	s.mu.Lock()
	var names []string
	snapshot := map[string]Endpoint{}
	for n, ep := range s.endpoints {
		if strings.HasPrefix(n, prefix) {
			names = append(names, n)
			snapshot[n] = ep
		}
	}
	s.mu.Unlock()
	if len(names) == 0 {
		writeError(w, http.StatusNotFound, "NOT_FOUND", fmt.Sprintf("branch %q not found", branch))
		return
	}
	pageNames, next, err := s.page(r, names)
	if err != nil {
		writeError(w, http.StatusBadRequest, "INVALID_PARAMETER_VALUE", err.Error())
		return
	}
	items := make([]map[string]any, 0, len(pageNames))
	for _, n := range pageNames {
		items = append(items, endpointJSON(snapshot[n]))
	}
	body := map[string]any{"endpoints": items}
	if next != "" {
		body["next_page_token"] = next
	}
	writeJSON(w, http.StatusOK, body)
}

func (s *Server) serveDatabaseCredential(w http.ResponseWriter, r *http.Request) {
	var req struct {
		InstanceNames []string `json:"instance_names"`
		RequestID     string   `json:"request_id"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "MALFORMED_REQUEST", "lakebasetest: request body is not JSON: "+err.Error())
		return
	}
	if len(req.InstanceNames) == 0 {
		writeError(w, http.StatusBadRequest, "INVALID_PARAMETER_VALUE", "At least one of instance_names or claims must be specified.")
		return
	}
	s.mu.Lock()
	for _, n := range req.InstanceNames {
		if _, ok := s.instances[n]; !ok {
			s.mu.Unlock()
			writeError(w, http.StatusNotFound, "RESOURCE_DOES_NOT_EXIST", fmt.Sprintf("Database instance '%s' does not exist.", n))
			return
		}
	}
	if prev, ok := s.byRequest[req.RequestID]; ok && req.RequestID != "" {
		// A retried request (same request_id) gets the same credential.
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, databaseCredentialJSON(prev))
		return
	}
	s.mu.Unlock()
	m, status, err := s.mint(OpDatabaseCredential, strings.Join(req.InstanceNames, ","), req.RequestID)
	if err != nil {
		writeError(w, status, errorCode(status), err.Error())
		return
	}
	writeJSON(w, http.StatusOK, databaseCredentialJSON(m))
}

func databaseCredentialJSON(m Mint) map[string]any {
	body := map[string]any{"token": m.Token}
	if !m.ExpireTime.IsZero() {
		body["expiration_time"] = m.ExpireTime.UTC().Format(time.RFC3339Nano)
	}
	return body
}

func (s *Server) servePostgresCredential(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Endpoint string `json:"endpoint"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "MALFORMED_REQUEST", "lakebasetest: request body is not JSON: "+err.Error())
		return
	}
	if req.Endpoint == "" {
		writeError(w, http.StatusBadRequest, "INVALID_PARAMETER_VALUE", "endpoint is required")
		return
	}
	s.mu.Lock()
	_, ok := s.endpoints[req.Endpoint]
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "NOT_FOUND", fmt.Sprintf("endpoint %q not found", req.Endpoint))
		return
	}
	m, status, err := s.mint(OpPostgresCredential, req.Endpoint, "")
	if err != nil {
		writeError(w, status, errorCode(status), err.Error())
		return
	}
	body := map[string]any{"token": m.Token}
	if !m.ExpireTime.IsZero() {
		body["expire_time"] = m.ExpireTime.UTC().Format(time.RFC3339Nano)
	}
	writeJSON(w, http.StatusOK, body)
}

// errHookFailed is the message of a mint failed by the OnMint hook. The
// hook's own error text is left out of the answer, in case it quotes the
// token.
var errHookFailed = errors.New("lakebasetest: the OnMint hook failed the mint")

// mint makes a new token, runs the hook and records the token.
func (s *Server) mint(op Op, target, requestID string) (Mint, int, error) {
	tok, err := newToken()
	if err != nil {
		return Mint{}, http.StatusInternalServerError, fmt.Errorf("lakebasetest: random token: %w", err)
	}
	s.mu.Lock()
	m := Mint{Op: op, Target: target, User: s.userName, Token: tok, RequestID: requestID}
	if s.lifetime != NoExpiry {
		m.ExpireTime = s.now().Add(s.lifetime).UTC()
	}
	hook := s.hook
	s.mu.Unlock()

	if hook != nil {
		if err := hook(m); err != nil {
			return Mint{}, http.StatusInternalServerError, errHookFailed
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.issued[tok]; dup {
		// 32 random bytes never repeat; this guards the promise anyway.
		return Mint{}, http.StatusInternalServerError, errors.New("lakebasetest: duplicate token")
	}
	s.issued[tok] = m
	if requestID != "" {
		s.byRequest[requestID] = m
	}
	s.mints = append(s.mints, m)
	return m, http.StatusOK, nil
}

// newToken returns a random token shaped like a JWT (three base64url parts),
// with no quote or backslash, safe to use as a PostgreSQL password.
func newToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return "eyJhbGciOiJub25lIn0.eyJpc3MiOiJsYWtlYmFzZXRlc3QifQ." + base64.RawURLEncoding.EncodeToString(b), nil
}
