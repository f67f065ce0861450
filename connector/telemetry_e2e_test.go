package connector_test

// The store, the Connector and the token source together, with the
// OpenTelemetry SDK installed for all three: the connect span nests under
// the store's span, and nothing any of them records holds a token, a
// password, a DSN with a password or an item's content.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/lakesession/lakesession"
	"github.com/lakesession/lakesession/bunstore"
	"github.com/lakesession/lakesession/connector"
	"github.com/lakesession/lakesession/internal/testdb"
	"github.com/lakesession/lakesession/lakebasecred"
	"github.com/lakesession/lakesession/lakebasecred/lakebasetest"
)

// database/sql passes the caller's context to Connect when a call needs a
// new connection, so the connect span of a store call is a child of the
// store's span (lakesession.<Method>).
func TestStoreCallIsTheConnectParent(t *testing.T) {
	o := newOtelSDK(t)
	c, err := connector.New(connector.Config{DSN: testdb.NewDatabase(t), TracerProvider: o.tp, MeterProvider: o.mp})
	if err != nil {
		t.Fatal(err)
	}
	sqldb := connector.OpenDB(c)
	defer sqldb.Close()
	sqldb.SetMaxIdleConns(0) // every call opens a connection
	st, err := bunstore.New(bun.NewDB(sqldb, pgdialect.New()),
		bunstore.WithTracerProvider(o.tp), bunstore.WithMeterProvider(o.mp))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s := st.Session("parent-test")
	calls := []struct {
		name string
		call func() error
	}{
		{"CreateTables", func() error { return st.CreateTables(ctx) }},
		{"AddItems", func() error {
			return s.AddItems(ctx, []json.RawMessage{json.RawMessage(`{"role":"user","content":"hi"}`)})
		}},
		{"GetItems", func() error { _, err := s.GetItems(ctx, 0); return err }},
		{"PopItem", func() error { _, err := s.PopItem(ctx); return err }},
		{"ListSessions", func() error { _, err := st.ListSessions(ctx, bunstore.ListOptions{}); return err }},
		{"ClearSession", func() error { return s.ClearSession(ctx) }},
	}
	for _, call := range calls {
		o.spans.Reset()
		if err := call.call(); err != nil {
			t.Fatalf("%s: %v", call.name, err)
		}
		var store []sdktrace.ReadOnlySpan
		for _, sp := range o.scopeSpans(bunstore.ScopeName) {
			if sp.Name() == "lakesession."+call.name {
				store = append(store, sp)
			}
		}
		connects := o.scopeSpans("")
		if len(store) != 1 || len(connects) == 0 {
			t.Fatalf("%s: %d store spans and %d connect spans, want 1 and at least 1", call.name, len(store), len(connects))
		}
		for _, cs := range connects {
			if cs.Parent().SpanID() != store[0].SpanContext().SpanID() || cs.SpanContext().TraceID() != store[0].SpanContext().TraceID() {
				t.Errorf("%s: the connect span's parent is %v, want the store's span %v", call.name, cs.Parent().SpanID(), store[0].SpanContext().SpanID())
			}
		}
	}
}

// found is a text that telemetry holds, and where.
type found struct {
	where string
	text  string
}

// collectTexts returns every string in v, found by walking its fields
// (exported or not), pointers, interfaces, slices, arrays and maps; byte
// slices and arrays are read as text too. Times are skipped.
func collectTexts(where string, v any) []found {
	var out []found
	walkTexts(where, reflect.ValueOf(v), &out, 0)
	return out
}

var timeType = reflect.TypeOf(time.Time{})

func walkTexts(where string, v reflect.Value, out *[]found, depth int) {
	if !v.IsValid() || depth > 40 {
		return
	}
	switch v.Kind() {
	case reflect.String:
		if s := v.String(); s != "" {
			*out = append(*out, found{where, s})
		}
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			walkTexts(where, v.Elem(), out, depth+1)
		}
	case reflect.Struct:
		if v.Type() == timeType {
			return
		}
		for i := 0; i < v.NumField(); i++ {
			walkTexts(where+"."+v.Type().Field(i).Name, v.Field(i), out, depth+1)
		}
	case reflect.Slice, reflect.Array:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			b := make([]byte, v.Len())
			for i := range b {
				b[i] = byte(v.Index(i).Uint())
			}
			*out = append(*out, found{where, string(b)})
			return
		}
		for i := 0; i < v.Len(); i++ {
			walkTexts(fmt.Sprintf("%s[%d]", where, i), v.Index(i), out, depth+1)
		}
	case reflect.Map:
		it := v.MapRange()
		for it.Next() {
			walkTexts(where+"{key}", it.Key(), out, depth+1)
			walkTexts(where+"{value}", it.Value(), out, depth+1)
		}
	}
}

// telemetryTexts returns every text of every span (name, attributes,
// events, links, status, resource, scope) and every metric (resource,
// scope, name, description, unit, points' attributes, exemplars) recorded
// by o.
func telemetryTexts(t *testing.T, o *otelSDK) []found {
	t.Helper()
	var out []found
	for _, sp := range o.spans.Ended() {
		out = append(out, collectTexts("span "+sp.Name(), tracetest.SpanStubFromReadOnlySpan(sp))...)
	}
	var rm metricdata.ResourceMetrics
	if err := o.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out = append(out, collectTexts("metrics", rm)...)
	return out
}

// secretScan holds what telemetry must never contain.
type secretScan struct {
	literals map[string]string // text -> what it is
	patterns []*regexp.Regexp  // DSNs with a password
}

func newSecretScan() *secretScan {
	return &secretScan{
		literals: map[string]string{},
		patterns: []*regexp.Regexp{
			regexp.MustCompile(`(?i)postgres(ql)?://[^/\s:@]*:[^/\s@]+@`), // URL with user:password@
			regexp.MustCompile(`(?i)\bpassword\s*=\s*('[^']+'|[^\s']+)`),  // keyword/value DSN with a password
		},
	}
}

func (s *secretScan) add(what, text string) {
	if text != "" {
		s.literals[text] = what
	}
}

// scan returns one line per secret found in texts.
func (s *secretScan) scan(texts []found) []string {
	var leaks []string
	for _, f := range texts {
		for lit, what := range s.literals {
			if strings.Contains(f.text, lit) {
				leaks = append(leaks, fmt.Sprintf("%s holds %s: %q", f.where, what, f.text))
			}
		}
		for _, re := range s.patterns {
			if re.MatchString(f.text) {
				leaks = append(leaks, fmt.Sprintf("%s holds a DSN with a password: %q", f.where, f.text))
			}
		}
	}
	return leaks
}

// The scan reaches every part of a span and of a metric: a secret put in
// any one of them is found there.
func TestSecretScanReachesEveryField(t *testing.T) {
	const secret = "s3cr3t-0123456789"
	secretRes := resource.NewSchemaless(attribute.String("deployment", "r-"+secret))
	parts := []struct {
		where string // a part of the path where the secret must be found
		res   *resource.Resource
		view  sdkmetric.View
		emit  func(ctx context.Context, tr trace.Tracer, m metric.Meter)
	}{
		{where: "span name " + secret, emit: func(ctx context.Context, tr trace.Tracer, _ metric.Meter) {
			_, sp := tr.Start(ctx, "name "+secret)
			sp.End()
		}},
		{where: ".Attributes[0].Value", emit: func(ctx context.Context, tr trace.Tracer, _ metric.Meter) {
			_, sp := tr.Start(ctx, "attr", trace.WithAttributes(attribute.StringSlice("a", []string{"x", secret})))
			sp.End()
		}},
		{where: ".Events[0].Attributes", emit: func(ctx context.Context, tr trace.Tracer, _ metric.Meter) {
			_, sp := tr.Start(ctx, "event")
			sp.AddEvent("e", trace.WithAttributes(attribute.String("k", secret)))
			sp.End()
		}},
		{where: ".Events[0].Name", emit: func(ctx context.Context, tr trace.Tracer, _ metric.Meter) {
			_, sp := tr.Start(ctx, "event name")
			sp.AddEvent("e " + secret)
			sp.End()
		}},
		{where: ".Events[0].Attributes", emit: func(ctx context.Context, tr trace.Tracer, _ metric.Meter) {
			_, sp := tr.Start(ctx, "error")
			sp.RecordError(errors.New("boom " + secret))
			sp.End()
		}},
		{where: ".Links[0].Attributes", emit: func(ctx context.Context, tr trace.Tracer, _ metric.Meter) {
			_, other := tr.Start(ctx, "other")
			other.End()
			_, sp := tr.Start(ctx, "link", trace.WithLinks(trace.Link{
				SpanContext: other.SpanContext(), Attributes: []attribute.KeyValue{attribute.String("k", secret)}}))
			sp.End()
		}},
		{where: ".Status.Description", emit: func(ctx context.Context, tr trace.Tracer, _ metric.Meter) {
			_, sp := tr.Start(ctx, "status")
			sp.SetStatus(codes.Error, "failed: "+secret)
			sp.End()
		}},
		{where: "span resource.Resource", res: secretRes, emit: func(ctx context.Context, tr trace.Tracer, _ metric.Meter) {
			_, sp := tr.Start(ctx, "resource")
			sp.End()
		}},
		{where: "metrics.Resource", res: secretRes, emit: func(ctx context.Context, _ trace.Tracer, m metric.Meter) {
			c, _ := m.Int64Counter("c")
			c.Add(ctx, 1)
		}},
		{where: "InstrumentationScope.Name", emit: func(ctx context.Context, tr trace.Tracer, _ metric.Meter) {
			_, sp := tr.Start(ctx, "scope")
			sp.End()
			_, sp = tr.Start(ctx, "scope")
			sp.End()
		}},
		{where: ".DataPoints[0].Attributes", emit: func(ctx context.Context, _ trace.Tracer, m metric.Meter) {
			c, _ := m.Int64Counter("c")
			c.Add(ctx, 1, metric.WithAttributes(attribute.String("k", secret)))
		}},
		{where: ".Metrics[0].Name", emit: func(ctx context.Context, _ trace.Tracer, m metric.Meter) {
			c, _ := m.Int64Counter("c." + secret[:6])
			c.Add(ctx, 1)
		}},
		{where: ".Metrics[0].Description", emit: func(ctx context.Context, _ trace.Tracer, m metric.Meter) {
			h, _ := m.Float64Histogram("h", metric.WithDescription("about "+secret))
			h.Record(ctx, 1)
		}},
		{where: ".Exemplars[0].FilteredAttributes",
			// A view that drops the attribute from the point keeps it on
			// the exemplar of a measurement made in a sampled span.
			view: sdkmetric.NewView(sdkmetric.Instrument{Name: "x"}, sdkmetric.Stream{AttributeFilter: attribute.NewDenyKeysFilter("k")}),
			emit: func(ctx context.Context, tr trace.Tracer, m metric.Meter) {
				ctx, sp := tr.Start(ctx, "sampled")
				c, _ := m.Int64Counter("x")
				c.Add(ctx, 1, metric.WithAttributes(attribute.String("k", secret)))
				sp.End()
			}},
	}
	scan := newSecretScan()
	scan.add("the secret", secret)
	scan.add("the secret's start", secret[:6])
	for _, part := range parts {
		res := part.res
		if res == nil {
			res = resource.Empty()
		}
		spans := tracetest.NewSpanRecorder()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans), sdktrace.WithResource(res))
		reader := sdkmetric.NewManualReader()
		mopts := []sdkmetric.Option{sdkmetric.WithReader(reader), sdkmetric.WithResource(res)}
		if part.view != nil {
			mopts = append(mopts, sdkmetric.WithView(part.view))
		}
		mp := sdkmetric.NewMeterProvider(mopts...)
		scope := "scan"
		if part.where == "InstrumentationScope.Name" {
			scope = "scope " + secret
		}
		part.emit(context.Background(), tp.Tracer(scope), mp.Meter(scope))
		leaks := scan.scan(telemetryTexts(t, &otelSDK{spans: spans, tp: tp, reader: reader, mp: mp}))
		hit := false
		for _, l := range leaks {
			hit = hit || strings.Contains(l, part.where)
		}
		if !hit {
			t.Errorf("a secret in %s: the scan found %v", part.where, leaks)
		}
		tp.Shutdown(context.Background())
		mp.Shutdown(context.Background())
	}
	// DSNs with a password, in both forms, and texts that only look alike.
	for _, dsn := range []string{"postgres://app:hunter2@db:5432/app", "host=db user=app password=hunter2 dbname=app", "password='a b'"} {
		if len(scan.scan([]found{{"test", dsn}})) == 0 {
			t.Errorf("the scan does not find the DSN %q", dsn)
		}
	}
	for _, ok := range []string{"postgres://app@db:5432/app", "token source *lakebasecred.Source", `password authentication failed for user "app"`} {
		if leaks := scan.scan([]found{{"test", ok}}); len(leaks) != 0 {
			t.Errorf("the scan finds a secret in %q: %v", ok, leaks)
		}
	}
}

// A Lakebase service end to end, with the OpenTelemetry SDK sampling
// everything for the store, the Connector (and a pgx QueryTracer that
// records each statement's text, as otelpgx does) and the token source:
// tokens minted by the fake control plane are the password of a real role
// over TLS; calls with a marker in the items' content; a token the
// database stops accepting, replaced by a new one; calls that fail on a
// refused login, a failed mint and an invalid item. Then every text the
// SDK holds is searched: no minted token, role password, Databricks token,
// DSN with a password or item content.
func TestTelemetryHoldsNoSecret(t *testing.T) {
	o := newOtelSDK(t)
	l := newLakebaseWith(t, time.Hour,
		[]lakebasecred.Option{lakebasecred.WithTracerProvider(o.tp), lakebasecred.WithMeterProvider(o.mp)},
		o.options(connector.WithQueryTracer(statementSpans{tracer: o.tp.Tracer("test/pgx")}))...)
	// The role may create the store's tables in the test database.
	if _, err := l.admin.Exec("GRANT CREATE, USAGE ON SCHEMA public TO " + quoteIdent(l.role)); err != nil {
		t.Fatal(err)
	}
	sqldb := l.openDB(t)
	sqldb.SetMaxIdleConns(0) // every call logs in, with the current token
	st, err := bunstore.New(bun.NewDB(sqldb, pgdialect.New()),
		bunstore.WithTracerProvider(o.tp), bunstore.WithMeterProvider(o.mp))
	if err != nil {
		t.Fatal(err)
	}

	const marker = "MARKER-7f3a9c-the-users-words"
	item := func(i int) json.RawMessage {
		return json.RawMessage(fmt.Sprintf(`{"role":"user","content":"%s %d"}`, marker, i))
	}
	ctx, request := o.tp.Tracer("test").Start(context.Background(), "request")
	s := st.Session("e2e-session")
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	must("CreateTables", st.CreateTables(ctx))
	must("AddItems", s.AddItems(ctx, []json.RawMessage{item(1), item(2), item(3)}))
	items, err := s.GetItems(ctx, 0)
	must("GetItems", err)
	if len(items) != 3 || !strings.Contains(string(items[2]), marker) {
		t.Fatalf("GetItems = %s, want the three items with the marker", items)
	}
	_, err = s.PopItem(ctx)
	must("PopItem", err)
	_, err = st.ListSessions(ctx, bunstore.ListOptions{})
	must("ListSessions", err)

	// The database stops accepting the cached token: the next login is
	// refused, the token replaced, and the call succeeds.
	rolePasswords := []string{"pw-" + randomToken(t)}
	l.setPassword(t, l.role, rolePasswords[0])
	mintsBefore := l.fake.MintCount()
	must("AddItems after the password changed", s.AddItems(ctx, []json.RawMessage{item(4)}))
	if l.fake.MintCount() != mintsBefore+1 {
		t.Fatalf("%d mints after the token was refused, want %d", l.fake.MintCount(), mintsBefore+1)
	}

	// A call that fails: the new token is refused too (the fake mints it
	// but the role's password stays another).
	l.fake.OnMint(func(lakebasetest.Mint) error { return nil })
	rolePasswords = append(rolePasswords, "pw-"+randomToken(t))
	l.setPassword(t, l.role, rolePasswords[1])
	if err := s.AddItems(ctx, []json.RawMessage{item(5)}); !connector.IsAuthError(err) {
		t.Fatalf("AddItems with refused tokens: %v, want a refused login", err)
	}
	// A call that fails on the control plane: the next token cannot be
	// minted.
	l.fake.OnMint(func(m lakebasetest.Mint) error {
		_, err := l.admin.Exec(m.AlterRoleSQL())
		return err
	})
	l.fake.Fail(lakebasetest.OpDatabaseCredential, http.StatusForbidden, 1)
	if _, err := s.GetItems(ctx, 0); err == nil {
		t.Fatal("GetItems succeeded while no token could be minted")
	}
	// A call that fails on an invalid item holding the marker.
	if err := s.AddItems(ctx, []json.RawMessage{json.RawMessage(`{"content":"` + marker + `"`)}); !errors.Is(err, lakesession.ErrInvalidItem) {
		t.Fatalf("AddItems with an invalid item: %v, want ErrInvalidItem", err)
	}
	// Back to normal once the token source's backoff after the failed
	// mint is over.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if items, err = s.GetItems(ctx, 0); err == nil || time.Now().After(deadline) {
			break
		}
	}
	must("GetItems after the failures", err)
	if len(items) != 3 {
		t.Fatalf("GetItems = %d items, want 3", len(items))
	}
	must("ClearSession", s.ClearSession(ctx))
	request.End()

	// What the test went through shows in the telemetry.
	var sawReplaced, sawConnectError, sawStoreError, sawMintError, sawStatement bool
	names := map[string]int{}
	for _, sp := range o.spans.Ended() {
		names[sp.Name()]++
		a := attrMap(sp.Attributes())
		switch sp.InstrumentationScope().Name {
		case connector.ScopeName:
			sawReplaced = sawReplaced || a["lakesession.connect.token_replaced"] == "true"
			sawConnectError = sawConnectError || a["error.type"] == "28P01"
		case bunstore.ScopeName:
			sawStoreError = sawStoreError || sp.Status().Code == codes.Error
		case "github.com/lakesession/lakesession/lakebasecred":
			sawMintError = sawMintError || sp.Status().Code == codes.Error
		case "test/pgx":
			sawStatement = sawStatement || strings.Contains(a["db.query.text"], "message_data")
		}
	}
	for _, want := range []string{"lakesession.connect", "lakebase.token.mint", "lakesession.CreateTables", "lakesession.AddItems",
		"lakesession.GetItems", "lakesession.PopItem", "lakesession.ListSessions", "lakesession.ClearSession"} {
		if names[want] == 0 {
			t.Errorf("no span %s (spans: %v)", want, names)
		}
	}
	if !sawReplaced || !sawConnectError || !sawStoreError || !sawMintError || !sawStatement {
		t.Errorf("replaced token %v, refused login %v, failed store call %v, failed mint %v, statement text %v: want all seen",
			sawReplaced, sawConnectError, sawStoreError, sawMintError, sawStatement)
	}

	scan := newSecretScan()
	for i, m := range l.fake.Mints() {
		scan.add(fmt.Sprintf("minted token %d", i+1), m.Token)
	}
	for i, pw := range rolePasswords {
		scan.add(fmt.Sprintf("role password %d", i+1), pw)
	}
	scan.add("the Databricks token", lakebasetest.PAT)
	scan.add("the item marker", marker)
	if p, ok := passwordOf(testdb.AdminDSN(t)); ok {
		scan.add("the superuser's password", p)
	}
	if len(l.fake.Mints()) < 3 {
		t.Errorf("%d tokens minted, want at least 3 (first, replacement, refused)", len(l.fake.Mints()))
	}
	texts := telemetryTexts(t, o)
	metricNames := map[string]bool{}
	exemplars := 0
	for _, f := range texts {
		if strings.HasPrefix(f.where, "metrics.ScopeMetrics[") && strings.HasSuffix(f.where, ".Name") && strings.Contains(f.where, "].Metrics[") && !strings.Contains(f.where, ".Data") {
			metricNames[f.text] = true
		}
		if strings.Contains(f.where, ".Exemplars[") {
			exemplars++
		}
	}
	for _, want := range []string{connector.MetricConnectDuration, connector.MetricConnectAttempts, connector.MetricConnectAuthRejected,
		"lakesession.operation.duration", "lakesession.items.added",
		"lakebase.token.mint.duration", "lakebase.token.mints", "lakebase.token.expires_in"} {
		if !metricNames[want] {
			t.Errorf("the scan read no metric %s (read: %v)", want, metricNames)
		}
	}
	if exemplars == 0 {
		t.Error("the scan read no exemplar")
	}
	for _, leak := range scan.scan(texts) {
		t.Error(leak)
	}
	l.checkNoTokenLeaked(t)
	t.Logf("searched %d texts of %d spans and %d metrics (%d exemplar texts) for %d secrets and DSNs with a password",
		len(texts), len(o.spans.Ended()), len(metricNames), exemplars, len(scan.literals))
}

// passwordOf returns the password in a URL or keyword/value DSN.
func passwordOf(dsn string) (string, bool) {
	if m := regexp.MustCompile(`://[^/:@]*:([^/@]+)@`).FindStringSubmatch(dsn); m != nil {
		return m[1], true
	}
	if m := regexp.MustCompile(`\bpassword=('[^']*'|\S+)`).FindStringSubmatch(dsn); m != nil {
		return strings.Trim(m[1], "'"), true
	}
	return "", false
}
