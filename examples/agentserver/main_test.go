package main

import (
	"bytes"
	"context"
	"encoding/json"

	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
	"go.opentelemetry.io/otel"

	"github.com/lakesession/lakesession/bunstore/sqlitedb"
	"github.com/lakesession/lakesession/connector"
	"github.com/lakesession/lakesession/examples/internal/demo"
	"github.com/lakesession/lakesession/internal/testdb"
)

// syncBuffer is a bytes.Buffer safe for the server's logger and the test.
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

type server struct {
	url    string
	logs   *syncBuffer
	stdout *syncBuffer // console spans and metrics
	cancel context.CancelFunc
	done   chan error
}

// start runs the server as main does, on 127.0.0.1, with the given
// environment, until stop is called.
func start(t *testing.T, args []string, vars map[string]string) *server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &server{logs: &syncBuffer{}, stdout: &syncBuffer{}, cancel: cancel, done: make(chan error, 1)}
	ready := make(chan string, 1)
	getenv := func(k string) string { return vars[k] }
	go func() {
		s.done <- run(ctx, append([]string{"-addr", "127.0.0.1:0"}, args...), getenv, s.stdout, s.logs, func(a string) { ready <- a })
	}()
	select {
	case addr := <-ready:
		s.url = "http://" + addr
	case err := <-s.done:
		cancel()
		t.Fatalf("the server stopped before listening: %v\n%s", err, s.logs)
	}
	t.Cleanup(func() {
		cancel()
		<-s.done
	})
	return s
}

// stop cancels the server's context, as SIGTERM does, and returns what run
// returned.
func (s *server) stop(t *testing.T) {
	t.Helper()
	s.cancel()
	err := <-s.done
	s.done <- err // for the cleanup
	if err != nil {
		t.Fatalf("run returned %v\n%s", err, s.logs)
	}
	if !strings.Contains(s.logs.String(), "msg=stopped") {
		t.Errorf("no clean stop in the logs:\n%s", s.logs)
	}
}

func countRows(t *testing.T, db *bun.DB, sessionID string) int {
	t.Helper()
	var n int
	if err := db.QueryRowContext(context.Background(), "SELECT count(*) FROM agent_messages WHERE session_id = ?", sessionID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestRunSQLiteDefault(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.db")
	s := start(t, nil, map[string]string{"SQLITE_PATH": path})
	if !strings.Contains(s.logs.String(), "model=offline-demo-model") || !strings.Contains(s.logs.String(), path) {
		t.Errorf("the start line does not name the offline model and the file:\n%s", s.logs)
	}
	res, err := demo.Converse(context.Background(), http.DefaultClient, s.url, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	s.stop(t)

	db, err := sqlitedb.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := demo.PrintRows(context.Background(), db, res.SessionID, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if err := demo.CheckTurns(rows, res, io.Discard); err != nil {
		t.Errorf("the SQLite file after the server stopped: %v", err)
	}
}

// TestRunConsoleTelemetry runs the server with spans and metrics to the
// console: a turn's server span is on stdout with the store's spans, the
// startup's CreateTables too, and the metrics are flushed when it stops.
func TestRunConsoleTelemetry(t *testing.T) {
	keepGlobals(t)
	s := start(t, nil, map[string]string{
		"SQLITE_PATH":           filepath.Join(t.TempDir(), "agent.db"),
		"OTEL_TRACES_EXPORTER":  "console",
		"OTEL_METRICS_EXPORTER": "console",
	})
	if !strings.Contains(s.logs.String(), "otel_traces=console otel_metrics=console") {
		t.Errorf("start line:\n%s", s.logs)
	}
	if _, err := demo.Converse(context.Background(), http.DefaultClient, s.url, io.Discard); err != nil {
		t.Fatal(err)
	}
	s.stop(t)
	type span struct {
		Name        string
		SpanContext struct{ TraceID, SpanID string }
		Parent      struct{ SpanID string }
	}
	var spans []span
	metrics := false
	for _, line := range strings.Split(s.stdout.String(), "\n") {
		if strings.HasPrefix(line, `{"Name":`) {
			var sp span
			if err := json.Unmarshal([]byte(line), &sp); err != nil {
				t.Fatalf("a console span is not JSON: %v\n%s", err, line)
			}
			spans = append(spans, sp)
		}
		metrics = metrics || strings.Contains(line, `"Name":"http.server.request.duration"`)
	}
	byID := map[string]span{}
	for _, sp := range spans {
		byID[sp.SpanContext.SpanID] = sp
	}
	var servers, stored, created int
	for _, sp := range spans {
		switch sp.Name {
		case "POST /invocations":
			servers++
		case "lakesession.AddItems":
			if byID[sp.Parent.SpanID].Name == "POST /invocations" {
				stored++
			}
		case "lakesession.CreateTables":
			created++
		}
	}
	if servers != 3 || stored != 3 || created != 1 {
		t.Errorf("%d server spans, %d AddItems under one, %d CreateTables; want 3, 3, 1:\n%s", servers, stored, created, s.stdout)
	}
	if !metrics {
		t.Errorf("no HTTP metrics flushed at exit:\n%s", s.stdout)
	}
}

// keepGlobals restores the global OpenTelemetry providers after the test.
func keepGlobals(t *testing.T) {
	tp, mp, prop := otel.GetTracerProvider(), otel.GetMeterProvider(), otel.GetTextMapPropagator()
	t.Cleanup(func() {
		otel.SetTracerProvider(tp)
		otel.SetMeterProvider(mp)
		otel.SetTextMapPropagator(prop)
	})
}

func TestRunPostgres(t *testing.T) {
	dsn := testdb.NewDatabase(t)
	s := start(t, nil, map[string]string{"DATABASE_URL": dsn, "HISTORY_LIMIT": "10"})
	if !strings.Contains(s.logs.String(), `storage="PostgreSQL `) || !strings.Contains(s.logs.String(), "history_limit=10") {
		t.Errorf("start line:\n%s", s.logs)
	}
	res, err := demo.Converse(context.Background(), http.DefaultClient, s.url, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	s.stop(t)

	c, err := connector.New(connector.Config{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	db := bun.NewDB(connector.OpenDB(c), pgdialect.New())
	defer db.Close()
	rows, err := demo.PrintRows(context.Background(), db, res.SessionID, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if err := demo.CheckTurns(rows, res, io.Discard); err != nil {
		t.Errorf("PostgreSQL: %v", err)
	}
}

// TestRunGracefulShutdown stops the server while a turn waits for the model:
// the turn is answered and stored before run returns.
func TestRunGracefulShutdown(t *testing.T) {
	got := make(chan struct{}, 1)
	release := make(chan struct{})
	model := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- struct{}{}
		<-release
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"finish_reason":"stop","message":{"role":"assistant","content":"late answer"}}]}`)
	}))
	defer model.Close()
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()

	path := filepath.Join(t.TempDir(), "agent.db")
	s := start(t, nil, map[string]string{
		"SQLITE_PATH":     path,
		"OPENAI_BASE_URL": model.URL + "/v1/",
		"OPENAI_API_KEY":  "k",
		"OPENAI_MODEL":    "m",
	})
	type answer struct {
		status int
		body   []byte
		err    error
	}
	answered := make(chan answer, 1)
	go func() {
		resp, err := http.Post(s.url+"/invocations", "application/json",
			strings.NewReader(`{"input":[{"role":"user","content":"hi"}],"custom_inputs":{"session_id":"in-flight"}}`))
		if err != nil {
			answered <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		answered <- answer{resp.StatusCode, b, err}
	}()
	<-got
	s.cancel() // SIGTERM
	deadline := time.After(time.Minute)
	for !strings.Contains(s.logs.String(), "shutting down") {
		select {
		case err := <-s.done:
			t.Fatalf("run returned %v with a request in flight", err)
		case <-deadline:
			t.Fatalf("no shutdown a minute after the stop signal:\n%s", s.logs)
		case <-time.After(10 * time.Millisecond):
		}
	}
	select {
	case err := <-s.done:
		t.Fatalf("run returned %v with a request in flight", err)
	default:
	}
	close(release)
	a := <-answered
	if a.err != nil || a.status != http.StatusOK || !bytes.Contains(a.body, []byte("late answer")) {
		t.Fatalf("the request in flight got %d %s %v", a.status, a.body, a.err)
	}
	s.stop(t)

	db, err := sqlitedb.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if n := countRows(t, db, "in-flight"); n != 2 {
		t.Errorf("the turn finished during shutdown stored %d rows, want 2", n)
	}
}

func TestRunConfigErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		args []string
		vars map[string]string
		want string
	}{
		{"extra argument", []string{"serve"}, nil, "unexpected arguments"},
		{"bad history limit", nil, map[string]string{"HISTORY_LIMIT": "ten"}, "HISTORY_LIMIT"},
		{"negative history limit", []string{"-history-limit", "-1"}, nil, "-history-limit"},
		{"model without name", nil, map[string]string{"OPENAI_API_KEY": "k"}, "OPENAI_MODEL"},
		{"two storages", nil, map[string]string{"DATABASE_URL": "postgres://x", "LAKEBASE_INSTANCE_NAME": "i"}, "unset one"},
		{"two models", nil, map[string]string{"OPENAI_MODEL": "m", "DATABRICKS_SERVING_ENDPOINT": "e"}, "unset one"},
		{"unknown span exporter", nil, map[string]string{"OTEL_TRACES_EXPORTER": "jaeger"}, "OTEL_TRACES_EXPORTER"},
		{"OTLP over gRPC", nil, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "http/protobuf"},
		{"bad address", []string{"-addr", "127.0.0.1:99999"}, nil, "99999"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vars := map[string]string{"SQLITE_PATH": filepath.Join(dir, "x.db")}
			for k, v := range tt.vars {
				vars[k] = v
			}
			var logs syncBuffer
			args := append([]string{"-addr", "127.0.0.1:0"}, tt.args...)
			err := run(context.Background(), args, func(k string) string { return vars[k] }, io.Discard, &logs,
				func(string) { t.Error("the server started") })
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("run: %v, want an error about %q", err, tt.want)
			}
		})
	}
}

func TestDefaultAddr(t *testing.T) {
	for _, tt := range []struct {
		vars map[string]string
		want string
	}{
		{nil, "127.0.0.1:8000"},
		{map[string]string{"DATABRICKS_APP_PORT": "8080"}, ":8080"},
		{map[string]string{"ADDR": "0.0.0.0:9000", "DATABRICKS_APP_PORT": "8080"}, "0.0.0.0:9000"},
	} {
		if got := defaultAddr(func(k string) string { return tt.vars[k] }); got != tt.want {
			t.Errorf("%v: %q, want %q", tt.vars, got, tt.want)
		}
	}
}

// TestRunDatabricksServingEndpoint runs the server with a model behind a
// serving endpoint, authenticated from the DATABRICKS_* variables.
func TestRunDatabricksServingEndpoint(t *testing.T) {
	var mu sync.Mutex
	var auths []string
	ws := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/serving-endpoints/chat/completions" {
			http.NotFound(w, r)
			return
		}
		mu.Lock()
		auths = append(auths, r.Header.Get("Authorization"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"id":"c","object":"chat.completion","created":1,"model":"x","choices":[{"index":0,"finish_reason":"stop","message":{"role":"assistant","content":"You live in SF."}}]}`)
	}))
	defer ws.Close()
	t.Setenv("DATABRICKS_HOST", ws.URL)
	t.Setenv("DATABRICKS_TOKEN", "dapi-serving-test")
	t.Setenv("DATABRICKS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))

	s := start(t, nil, map[string]string{
		"SQLITE_PATH":                 filepath.Join(t.TempDir(), "agent.db"),
		"DATABRICKS_SERVING_ENDPOINT": "my-endpoint",
	})
	if !strings.Contains(s.logs.String(), "model=my-endpoint") {
		t.Errorf("start line:\n%s", s.logs)
	}
	if _, err := demo.Converse(context.Background(), http.DefaultClient, s.url, io.Discard); err != nil {
		t.Fatal(err)
	}
	s.stop(t)
	mu.Lock()
	defer mu.Unlock()
	if len(auths) != 3 || auths[0] != "Bearer dapi-serving-test" {
		t.Errorf("the serving endpoint was called with %q, want three times with the Databricks token", auths)
	}
}
