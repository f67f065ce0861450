package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/lakesession/lakesession"
	"github.com/lakesession/lakesession/examples/agentserver/agent"
	"github.com/lakesession/lakesession/examples/agentserver/storage"
	"github.com/lakesession/lakesession/examples/agentserver/telemetry"
	"github.com/lakesession/lakesession/internal/testdb"
)

func TestFromEnv(t *testing.T) {
	for _, tt := range []struct {
		name            string
		env             map[string]string
		traces, metrics []string
		wantErr         string
	}{
		{name: "nothing by default"},
		{name: "an OTLP endpoint means otlp", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"},
			traces: []string{"otlp"}, metrics: []string{"otlp"}},
		{name: "a traces endpoint means otlp traces", env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"},
			traces: []string{"otlp"}},
		{name: "console", env: map[string]string{"OTEL_TRACES_EXPORTER": "console", "OTEL_METRICS_EXPORTER": "Console"},
			traces: []string{"console"}, metrics: []string{"console"}},
		{name: "console and otlp", env: map[string]string{"OTEL_TRACES_EXPORTER": " console , otlp,console"},
			traces: []string{"console", "otlp"}},
		{name: "none wins over an endpoint", env: map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"},
			metrics: []string{"otlp"}},
		{name: "disabled", env: map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "console"}},
		{name: "http/protobuf", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"},
			traces: []string{"otlp"}},
		{name: "an unknown exporter", env: map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"},
			wantErr: `OTEL_TRACES_EXPORTER="zipkin": "zipkin" is not an exporter of this server; use console, otlp or none`},
		{name: "grpc", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "grpc"},
			wantErr: `OTEL_EXPORTER_OTLP_METRICS_PROTOCOL="grpc": this server exports OTLP over HTTP only`},
		{name: "grpc not used", env: map[string]string{"OTEL_TRACES_EXPORTER": "console", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
			traces: []string{"console"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := telemetry.FromEnv(func(k string) string { return tt.env[k] })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(c.Traces, tt.traces) || !reflect.DeepEqual(c.Metrics, tt.metrics) {
				t.Errorf("traces %q, metrics %q; want %q, %q", c.Traces, c.Metrics, tt.traces, tt.metrics)
			}
			if c.Enabled() != (len(tt.traces)+len(tt.metrics) > 0) {
				t.Errorf("Enabled() = %v", c.Enabled())
			}
		})
	}
}

// keepGlobals restores the global providers after the test.
func keepGlobals(t *testing.T) {
	tp, mp, prop := otel.GetTracerProvider(), otel.GetMeterProvider(), otel.GetTextMapPropagator()
	t.Cleanup(func() {
		otel.SetTracerProvider(tp)
		otel.SetMeterProvider(mp)
		otel.SetTextMapPropagator(prop)
	})
}

// server is the agent server's stack as run builds it, on storage: the
// handler with the offline model and the weather tool, behind
// telemetry.Handler.
func server(t *testing.T, st *storage.Storage) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(telemetry.Handler(&agent.Handler{
		Sessions: func(id string) lakesession.Session { return st.Store.Session(id) },
		Model:    agent.OfflineModel{},
		Tools:    []agent.Tool{agent.WeatherTool()},
		Logger:   slog.New(slog.DiscardHandler),
	}))
	t.Cleanup(srv.Close)
	return srv
}

func openSQLite(t *testing.T) *storage.Storage {
	t.Helper()
	st, err := storage.Open(context.Background(), storage.Config{SQLitePath: filepath.Join(t.TempDir(), "a.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// post sends text in session sid, with header set, and returns the body.
func post(t *testing.T, url, sid, text string, header map[string]string) []byte {
	t.Helper()
	body, _ := json.Marshal(map[string]any{
		"input":         []any{map[string]string{"role": "user", "content": text}},
		"custom_inputs": map[string]string{"session_id": sid},
	})
	req, err := http.NewRequest(http.MethodPost, url+"/invocations", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%q: %d %s", text, resp.StatusCode, b)
	}
	return b
}

func attrs(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes() {
		m[kv.Key] = kv.Value
	}
	return m
}

// TestRequestSpans: one request makes an HTTP server span, with the
// store's spans, the model calls and the tool call as its children, and
// the HTTP and store metrics; nothing recorded holds the conversation.
func TestRequestSpans(t *testing.T) {
	keepGlobals(t)
	spans := tracetest.NewInMemoryExporter()
	reader := sdkmetric.NewManualReader()
	shutdown, err := telemetry.Setup(context.Background(), telemetry.Config{
		SpanExporters: []sdktrace.SpanExporter{spans},
		MetricReaders: []sdkmetric.Reader{reader},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(context.Background())

	st := openSQLite(t) // after Setup, as run does
	srv := server(t, st)
	post(t, srv.URL, "s-123", "Hello I live in SF!", nil)
	if resp, err := http.Get(srv.URL + "/healthz"); err == nil {
		resp.Body.Close()
	}
	spans.Reset()

	// A caller's trace context is continued.
	const parentTrace, parentSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	post(t, srv.URL, "s-123", "What's the weather where I live?", map[string]string{
		"traceparent": "00-" + parentTrace + "-" + parentSpan + "-01",
	})

	got := spans.GetSpans().Snapshots()
	var root sdktrace.ReadOnlySpan
	for _, s := range got {
		if s.SpanKind() == trace.SpanKindServer {
			if root != nil {
				t.Fatalf("two server spans for one request: %s and %s", root.Name(), s.Name())
			}
			root = s
		}
	}
	if root == nil {
		t.Fatalf("no server span among %d spans", len(got))
	}
	a := attrs(root)
	if root.Name() != "POST /invocations" || a["http.request.method"].AsString() != "POST" || a["http.response.status_code"].AsInt64() != 200 {
		t.Errorf("server span %q with %v", root.Name(), root.Attributes())
	}
	if root.Parent().TraceID().String() != parentTrace || root.Parent().SpanID().String() != parentSpan || !root.Parent().IsRemote() {
		t.Errorf("server span's parent %v, want the caller's span %s", root.Parent(), parentSpan)
	}

	// Its children, in the order they started: the history, the model,
	// the tool, the model again, the stored turn.
	sortByStart(got)
	var children []string
	for _, s := range got {
		if s.Parent().SpanID() == root.SpanContext().SpanID() {
			children = append(children, s.Name())
			if s.SpanContext().TraceID() != root.SpanContext().TraceID() {
				t.Errorf("%s is in another trace", s.Name())
			}
		}
	}
	want := []string{
		"lakesession.GetItems",
		"chat offline-demo-model",
		"execute_tool get_weather",
		"chat offline-demo-model",
		"lakesession.AddItems",
	}
	if strings.Join(children, ", ") != strings.Join(want, ", ") {
		t.Errorf("children of the server span:\n%s\nwant:\n%s", strings.Join(children, "\n"), strings.Join(want, "\n"))
	}
	for _, s := range got {
		a := attrs(s)
		switch s.Name() {
		case "lakesession.AddItems":
			if a["lakesession.items"].AsInt64() != 4 || a["db.system.name"].AsString() != "sqlite" {
				t.Errorf("AddItems span %v: want the turn's 4 items in one call, on sqlite", s.Attributes())
			}
		case "execute_tool get_weather":
			if a["gen_ai.tool.name"].AsString() != "get_weather" || !strings.HasPrefix(a["gen_ai.tool.call.id"].AsString(), "call_") {
				t.Errorf("tool span %v", s.Attributes())
			}
		}
	}

	// Nothing recorded holds the conversation or the session id.
	var everything strings.Builder
	for _, s := range got {
		everything.WriteString(s.Name())
		for _, kv := range s.Attributes() {
			everything.WriteString(" " + string(kv.Key) + "=" + kv.Value.String())
		}
		for _, ev := range s.Events() {
			everything.WriteString(" " + ev.Name)
			for _, kv := range ev.Attributes {
				everything.WriteString(" " + kv.Value.String())
			}
		}
		everything.WriteString(" " + s.Status().Description + "\n")
	}
	for _, secret := range []string{"s-123", "weather where", "fog", "SF"} {
		if strings.Contains(everything.String(), secret) {
			t.Errorf("a span holds %q:\n%s", secret, everything.String())
		}
	}
	// /healthz is not traced.
	if strings.Contains(everything.String(), "healthz") {
		t.Errorf("a health check was traced")
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			names[m.Name] = true
		}
	}
	for _, n := range []string{"http.server.request.duration", "lakesession.operation.duration", "lakesession.items.added"} {
		if !names[n] {
			t.Errorf("no metric %s among %v", n, names)
		}
	}
	if v, ok := rm.Resource.Set().Value("service.name"); !ok || v.AsString() != telemetry.DefaultServiceName {
		t.Errorf("service.name %v", v)
	}
}

func sortByStart(spans []sdktrace.ReadOnlySpan) {
	for i := 1; i < len(spans); i++ {
		for j := i; j > 0 && spans[j].StartTime().Before(spans[j-1].StartTime()); j-- {
			spans[j], spans[j-1] = spans[j-1], spans[j]
		}
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestConsole: with OTEL_TRACES_EXPORTER=console and
// OTEL_METRICS_EXPORTER=console, spans are written as they end and metrics
// at shutdown.
func TestConsole(t *testing.T) {
	keepGlobals(t)
	c, err := telemetry.FromEnv(func(k string) string {
		return map[string]string{"OTEL_TRACES_EXPORTER": "console", "OTEL_METRICS_EXPORTER": "console"}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	out := &syncBuffer{}
	c.Stdout = out
	shutdown, err := telemetry.Setup(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	srv := server(t, openSQLite(t))
	post(t, srv.URL, "s", "Hello I live in SF!", nil)
	if !strings.Contains(out.String(), `"Name":"POST /invocations"`) {
		t.Errorf("the server span is not on stdout after the request:\n%s", out)
	}
	if err := shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"Name":"lakesession.AddItems"`, `"Name":"http.server.request.duration"`, `"Name":"lakesession.operation.duration"`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("stdout lacks %s:\n%s", want, out)
		}
	}
}

// TestOTLP: with OTEL_EXPORTER_OTLP_ENDPOINT set, spans and metrics are
// sent over OTLP/HTTP; shutdown flushes them.
func TestOTLP(t *testing.T) {
	keepGlobals(t)
	var mu sync.Mutex
	got := map[string][][]byte{}
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.Header.Get("Content-Type") != "application/x-protobuf" {
			http.Error(w, "want protobuf", http.StatusUnsupportedMediaType)
			return
		}
		mu.Lock()
		got[r.URL.Path] = append(got[r.URL.Path], b)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer collector.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.URL)
	t.Setenv("OTEL_SERVICE_NAME", "agent-under-test")
	for _, k := range []string{"OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER", "OTEL_SDK_DISABLED", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}

	c, err := telemetry.FromEnv(os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	shutdown, err := telemetry.Setup(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	srv := server(t, openSQLite(t))
	post(t, srv.URL, "s", "Hello I live in SF!", nil)
	if err := shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	mu.Lock()
	defer mu.Unlock()
	if len(got["/v1/metrics"]) == 0 {
		t.Errorf("no metrics reached the collector: %v", keys(got))
	}
	names := map[string]bool{}
	service := ""
	for _, b := range got["/v1/traces"] {
		var req collectortrace.ExportTraceServiceRequest
		if err := proto.Unmarshal(b, &req); err != nil {
			t.Fatal(err)
		}
		for _, rs := range req.ResourceSpans {
			for _, kv := range rs.Resource.Attributes {
				if kv.Key == "service.name" {
					service = kv.Value.GetStringValue()
				}
			}
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					names[s.Name] = true
				}
			}
		}
	}
	for _, n := range []string{"POST /invocations", "lakesession.GetItems", "lakesession.AddItems", "chat offline-demo-model"} {
		if !names[n] {
			t.Errorf("span %q did not reach the collector; got %v", n, names)
		}
	}
	if service != "agent-under-test" {
		t.Errorf("service.name %q, want OTEL_SERVICE_NAME's", service)
	}
}

func keys(m map[string][][]byte) []string {
	var k []string
	for p := range m {
		k = append(k, p)
	}
	return k
}

func TestSetupWithNothingInstallsNothing(t *testing.T) {
	keepGlobals(t)
	before := otel.GetTracerProvider()
	shutdown, err := telemetry.Setup(context.Background(), telemetry.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if otel.GetTracerProvider() != before {
		t.Errorf("an empty Config installed a tracer provider")
	}
	if err := shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestRequestSpansPostgres: on PostgreSQL through the connector, with no
// idle connection kept, so that each statement opens one, the store's spans
// are the server span's children, and the connector's lakesession.connect
// spans theirs.
func TestRequestSpansPostgres(t *testing.T) {
	keepGlobals(t)
	spans := tracetest.NewInMemoryExporter()
	shutdown, err := telemetry.Setup(context.Background(), telemetry.Config{SpanExporters: []sdktrace.SpanExporter{spans}})
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(context.Background())
	st, err := storage.Open(context.Background(), storage.Config{DatabaseURL: testdb.NewDatabase(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	st.DB.SetMaxIdleConns(0)
	srv := server(t, st)
	spans.Reset()
	post(t, srv.URL, "s", "Hello I live in SF!", nil)

	got := spans.GetSpans().Snapshots()
	sortByStart(got)
	byID := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	for _, s := range got {
		byID[s.SpanContext().SpanID()] = s
	}
	var under []string
	for _, s := range got {
		if p, ok := byID[s.Parent().SpanID()]; ok && p.Name() == "POST /invocations" && strings.HasPrefix(s.Name(), "lakesession.") {
			under = append(under, s.Name())
			if a := attrs(s); a["db.system.name"].AsString() != "postgresql" {
				t.Errorf("%s: db.system.name %v", s.Name(), a["db.system.name"])
			}
		}
	}
	if got, want := strings.Join(under, ", "), "lakesession.GetItems, lakesession.AddItems"; got != want {
		t.Errorf("store spans under the server span: %s, want %s", got, want)
	}

	// Each store call opened a connection: a lakesession.connect span under
	// it, in the request's trace.
	connects := map[string]int{}
	for _, s := range got {
		if s.Name() != "lakesession.connect" {
			continue
		}
		p, ok := byID[s.Parent().SpanID()]
		if !ok {
			t.Errorf("a lakesession.connect span outside the request's trace")
			continue
		}
		if a := attrs(s); a["server.address"].AsString() == "" || a["server.port"].AsInt64() == 0 || s.SpanKind() != trace.SpanKindClient {
			t.Errorf("connect span %v", s.Attributes())
		}
		connects[p.Name()]++
	}
	if connects["lakesession.GetItems"] < 1 || connects["lakesession.AddItems"] < 1 {
		t.Errorf("connect spans by parent %v, want at least one under GetItems and one under AddItems", connects)
	}
}
