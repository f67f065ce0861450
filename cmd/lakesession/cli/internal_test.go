package cli

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
)

func TestParseAge(t *testing.T) {
	for _, c := range []struct {
		in   string
		want time.Duration
	}{
		{"30d", 30 * 24 * time.Hour},
		{"12h", 12 * time.Hour},
		{"2w", 14 * 24 * time.Hour},
		{"1d12h", 36 * time.Hour},
		{"90min", 90 * time.Minute},
		{"1h30min", 90 * time.Minute},
		{"45s", 45 * time.Second},
		{" 7d ", 7 * 24 * time.Hour},
		{"1.5h", 90 * time.Minute},
		{"500ms", 500 * time.Millisecond},
	} {
		got, err := parseAge(c.in)
		if err != nil || got != c.want {
			t.Errorf("parseAge(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	for _, in := range []string{"", "30", "d", "0s", "0d", "-1d", "30x", "1d-2h", "99999999999999999999d", "1000000w", "1y", "6mo", "30D"} {
		if got, err := parseAge(in); err == nil {
			t.Errorf("parseAge(%q) = %v, want an error", in, got)
		}
	}
	// An "m" unit could be minutes or months: a prune must not guess.
	for _, in := range []string{"6m", "90m", "1h30m", "1.5m", "2m30s", "1d6m"} {
		got, err := parseAge(in)
		if err == nil || !strings.Contains(err.Error(), "minutes or months") {
			t.Errorf("parseAge(%q) = %v, %v; want an error about minutes or months", in, got, err)
		}
		if _, err := parseSince(in, time.Now()); err == nil || !strings.Contains(err.Error(), "minutes or months") {
			t.Errorf("parseSince(%q) = %v; want an error about minutes or months", in, err)
		}
	}
}

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 6, 10, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		in   string
		want time.Time
	}{
		{"2026-06-01T08:30:00+02:00", time.Date(2026, 6, 1, 6, 30, 0, 0, time.UTC)},
		{"2026-06-01", time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)},
		{"7d", now.Add(-7 * 24 * time.Hour)},
		{"12h", now.Add(-12 * time.Hour)},
	} {
		got, err := parseSince(c.in, now)
		if err != nil || !got.Equal(c.want) {
			t.Errorf("parseSince(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	for _, in := range []string{"", "yesterday", "2026-13-01", "0d"} {
		if _, err := parseSince(in, now); err == nil {
			t.Errorf("parseSince(%q) succeeded", in)
		}
	}
}

func TestParseLine(t *testing.T) {
	id, item, err := parseLine([]byte(`{"session_id":"s \"1\"","item": {"role": "user", "content": "hi\u00e9"}, "extra": 1}` + "\r\n"))
	if err != nil || id != `s "1"` || string(item) != `{"role":"user","content":"hi\u00e9"}` {
		t.Fatalf("parseLine = %q, %q, %v", id, item, err)
	}
	for _, c := range []struct{ line, want string }{
		{"   ", "blank line"},
		{"\xff", "not valid UTF-8"},
		{`{"session_id":"a"`, "not valid JSON"},
		{`[1]`, "not a JSON object"},
		{`{"item":{}}`, `no "session_id"`},
		{`{"session_id":1,"item":{}}`, `"session_id" is not a string`},
		{`{"session_id":"","item":{}}`, "invalid session id"},
		{`{"session_id":"a\u0000b","item":{}}`, "invalid session id"},
		{`{"session_id":"a"}`, `no "item"`},
		{`{"session_id":"a","item":"text"}`, "invalid item"},
		{`{"session_id":"a","item":null}`, "invalid item"},
	} {
		_, _, err := parseLine([]byte(c.line))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("parseLine(%q) = %v, want an error with %q", c.line, err, c.want)
		}
	}
	// An error never quotes the line (it may hold a conversation).
	_, _, err = parseLine([]byte(`{"session_id":"a","item":{"secret": tru}}`))
	if err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("parseLine quoted the line: %v", err)
	}
}

// What export writes, import reads back to the same session id and item
// bytes.
func FuzzLineRoundTrip(f *testing.F) {
	f.Add("user-789", `{"role":"user","content":"Hello"}`)
	f.Add(`s "q" <x> & ✓`, `{"a":"caf\u00e9 <b> \/ \n","n":1.50e3,"z":[{}]}`)
	f.Add("a\nb", `{}`)
	f.Fuzz(func(t *testing.T, id, raw string) {
		line := []byte(`{"session_id":` + jsonText(id) + `,"item":` + raw + `}`)
		gotID, item, err := parseLine(line)
		if err != nil {
			return // not a valid id or item: refused, which is fine
		}
		var buf bytes.Buffer
		w := bufio.NewWriter(&buf)
		if err := writeLine(w, gotID, item); err != nil {
			t.Fatal(err)
		}
		w.Flush()
		if bytes.Count(buf.Bytes(), []byte("\n")) != 1 {
			t.Fatalf("writeLine wrote %q: not one line", buf.Bytes())
		}
		id2, item2, err := parseLine(buf.Bytes())
		if err != nil || id2 != gotID || !bytes.Equal(item2, item) {
			t.Fatalf("round trip of %q: %q, %q, %v; want %q, %q", buf.Bytes(), id2, item2, err, gotID, item)
		}
	})
}

func FuzzParseAge(f *testing.F) {
	for _, s := range []string{"30d", "1d12h", "90min", "6m", "1.5h", "0s", "9223372036854775807s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := parseAge(s)
		if err == nil && d <= 0 {
			t.Fatalf("parseAge(%q) = %v without an error", s, d)
		}
	})
}

func TestReadLine(t *testing.T) {
	in := "short\n" + strings.Repeat("x", 100) + "\nlast"
	r := bufio.NewReaderSize(strings.NewReader(in), 16)
	var got []string
	var sizes int
	for {
		line, size, tooLong, err := readLine(r, 50)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		sizes += size
		if tooLong {
			got = append(got, "TOO LONG")
		} else {
			got = append(got, string(line))
		}
	}
	if strings.Join(got, "|") != "short|TOO LONG|last" || sizes != len(in) {
		t.Fatalf("lines %q, %d bytes; want short, too long, last and %d bytes", got, sizes, len(in))
	}
}

func TestDescribeItem(t *testing.T) {
	for _, c := range []struct{ item, label, text string }{
		{`{"role":"user","content":"Hello\nthere"}`, "user", `Hello\nthere`},
		{`{"type":"message","role":"assistant","content":[{"type":"output_text","text":"Hi"},{"type":"refusal","refusal":"no"}]}`, "assistant", "Hi [refusal] no"},
		{`{"role":"user","content":[{"type":"input_text","text":"look"},{"type":"input_image","image_url":"x"}]}`, "user", "look [input_image]"},
		{`{"type":"function_call","name":"f","arguments":"{\"a\":1}","call_id":"c"}`, "function_call", `f({"a":1})`},
		{`{"type":"function_call_output","call_id":"c","output":"42"}`, "function_call_output", "42"},
		{`{"type":"function_call_output","call_id":"c","output":[{"type":"input_text","text":"ok"}]}`, "function_call_output", "ok"},
		{`{"type":"reasoning","summary":[{"type":"summary_text","text":"thinking"}]}`, "reasoning", "thinking"},
		{`{"type":"reasoning","summary":[]}`, "reasoning", "(no summary)"},
		{`{"type":"custom_tool_call","name":"g","input":"x"}`, "custom_tool_call", "g(x)"},
		{`{"type":"web_search_call","id":"w","status":"completed"}`, "web_search_call", `{"type":"web_search_call","id":"w","status":"completed"}`},
		{`{"type":"item_reference","id":"r"}`, "item_reference", `{"type":"item_reference","id":"r"}`},
		{`{"z":1}`, "item", `{"z":1}`},
	} {
		label, text := describeItem([]byte(c.item))
		if label != c.label || text != c.text {
			t.Errorf("describeItem(%s) = %q, %q; want %q, %q", c.item, label, text, c.label, c.text)
		}
	}
}

func TestPlural(t *testing.T) {
	for n, want := range map[int64]string{0: "0 items", 1: "1 item", 2: "2 items", 1234: "1,234 items", 10_000_000: "10,000,000 items", -1500: "-1,500 items"} {
		if got := plural(n, "item"); got != want {
			t.Errorf("plural(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestPoolerHostName(t *testing.T) {
	for host, want := range map[string]bool{
		"ep-cool-darkness-123456-pooler.us-east-2.aws.neon.tech": true,
		"pooler.example.com":                          true,
		"instance-1234.database.cloud.databricks.com": false,
		"db.pooler-net.example.com":                   false, // only the first label counts
		"127.0.0.1":                                   false,
		"":                                            false,
	} {
		if got := poolerHostName(host); got != want {
			t.Errorf("poolerHostName(%q) = %v, want %v", host, got, want)
		}
	}
}

// backendSwitches against a fake database/sql driver whose connections
// are served by server backends, directly (one each) or through a
// transaction pooler (a backend per transaction, the most recently freed
// first, as PgBouncer's default).
func TestBackendSwitches(t *testing.T) {
	for _, pooled := range []bool{false, true} {
		db := sql.OpenDB(&fakeServer{pooled: pooled})
		got, err := backendSwitches(context.Background(), db)
		db.Close()
		if err != nil || got != pooled {
			t.Errorf("pooled %v: backendSwitches = %v, %v", pooled, got, err)
		}
	}
}

type fakeServer struct {
	pooled bool
	mu     sync.Mutex
	next   int   // the next backend pid
	free   []int // pooler: idle backends, most recently freed last
}

func (s *fakeServer) Connect(context.Context) (driver.Conn, error) {
	c := &fakeConn{s: s}
	if !s.pooled {
		c.pid = s.take()
	}
	return c, nil
}

func (s *fakeServer) Driver() driver.Driver { return nil }

func (s *fakeServer) take() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := len(s.free); n > 0 {
		pid := s.free[n-1]
		s.free = s.free[:n-1]
		return pid
	}
	s.next++
	return 100 + s.next
}

func (s *fakeServer) release(pid int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.free = append(s.free, pid)
}

type fakeConn struct {
	s    *fakeServer
	pid  int // the backend serving the connection now; 0 between transactions on a pooler
	inTx bool
}

func (c *fakeConn) Prepare(string) (driver.Stmt, error) { return nil, errors.New("not supported") }
func (c *fakeConn) Close() error                        { return nil }
func (c *fakeConn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

func (c *fakeConn) BeginTx(context.Context, driver.TxOptions) (driver.Tx, error) {
	if c.s.pooled {
		c.pid = c.s.take()
	}
	c.inTx = true
	return c, nil
}

func (c *fakeConn) end() error {
	c.inTx = false
	if c.s.pooled {
		c.s.release(c.pid)
		c.pid = 0
	}
	return nil
}

func (c *fakeConn) Commit() error   { return c.end() }
func (c *fakeConn) Rollback() error { return c.end() }

func (c *fakeConn) QueryContext(_ context.Context, query string, _ []driver.NamedValue) (driver.Rows, error) {
	if query != "SELECT pg_backend_pid()" {
		return nil, errors.New("unexpected query " + query)
	}
	pid := c.pid
	if c.s.pooled && !c.inTx { // a statement of its own is a transaction
		pid = c.s.take()
		c.s.release(pid)
	}
	return &pidRows{pid: pid}, nil
}

type pidRows struct {
	pid  int
	done bool
}

func (r *pidRows) Columns() []string { return []string{"pg_backend_pid"} }
func (r *pidRows) Close() error      { return nil }
func (r *pidRows) Next(dest []driver.Value) error {
	if r.done {
		return io.EOF
	}
	r.done = true
	dest[0] = int64(r.pid)
	return nil
}

// The pooler check: a pooler found by name or by the probe is a problem
// unless the URL says statements are not prepared.
func TestPoolerCheck(t *testing.T) {
	for _, c := range []struct {
		host, url string
		pooled    bool
		want      string
	}{
		{"db.example.com", "postgres://u@db.example.com/db", false, "ok       transaction pooler: none seen"},
		{"db.example.com", "postgres://u@db.example.com/db", true, "problem  transaction pooler: a connection moved to another server session"},
		{"db.example.com", "postgres://u@db.example.com/db?default_query_exec_mode=exec", true, "ok       transaction pooler: a connection moved to another server session between two transactions: the host is a transaction pooler, and statements are not prepared (default_query_exec_mode exec): the store works through it"},
		{"ep-1-pooler.example.com", "postgres://u@ep-1-pooler.example.com/db", false, "problem  transaction pooler: host ep-1-pooler.example.com is named as a connection pooler"},
		{"ep-1-pooler.example.com", "postgres://u@ep-1-pooler.example.com/db?default_query_exec_mode=simple_protocol", false, "the store works through it"},
	} {
		db := sql.OpenDB(&fakeServer{pooled: c.pooled})
		var out bytes.Buffer
		d := &doctor{a: &app{}, out: &out}
		d.pooler(context.Background(), &conn{target: target{kind: kindPostgres, databaseURL: c.url}, db: bun.NewDB(db, pgdialect.New())}, c.host)
		db.Close()
		if !strings.Contains(out.String(), c.want) {
			t.Errorf("%s (pooled %v): %q, want %q", c.url, c.pooled, out.String(), c.want)
		}
	}
}

// The first pass notes a session's adjacent lines as one span (the plan
// of an export takes memory per session, not per line), and the second
// reads back exactly the checked items: CRLF line ends, blank lines and a
// last line without a newline included.
func TestPlanImport(t *testing.T) {
	in := `{"session_id":"a","item":{"n":1}}` + "\n" +
		`{"session_id":"a","item":{"n": 2}}` + "\r\n" +
		`{"session_id":"a","item":{"n":3}}` + "\n" +
		`{"session_id":"b","item":{"n":4}}` + "\n" +
		"\n" +
		`{"session_id":"b","item":{"n":5}}` + "\n" +
		`{"session_id":"a","item":{"n":6}}`
	got, err := planImport(strings.NewReader(in))
	if err != nil || got.badLines != 0 || got.lines != 7 || got.items != 6 || len(got.plans) != 2 {
		t.Fatalf("planImport = %+v, %v", got, err)
	}
	for _, c := range []struct {
		plan  *importPlan
		id    string
		spans int
		items string
	}{
		{got.plans[0], "a", 2, `{"n":1} {"n":2} {"n":3} {"n":6}`},
		{got.plans[1], "b", 2, `{"n":4} {"n":5}`},
	} {
		items, err := c.plan.batch(strings.NewReader(in))
		var text []string
		for _, it := range items {
			text = append(text, string(it))
		}
		if err != nil || c.plan.id != c.id || len(c.plan.spans) != c.spans || strings.Join(text, " ") != c.items {
			t.Errorf("session %s: %d spans, items %q, %v; want %s with %d spans and %s", c.plan.id, len(c.plan.spans), text, err, c.id, c.spans, c.items)
		}
	}
	// An input changed between the passes is refused.
	changed := strings.Replace(in, `{"n":3}`, `{"n":3`, 1)
	if _, err := got.plans[0].batch(strings.NewReader(changed)); err == nil || !strings.Contains(err.Error(), "the input changed") {
		t.Errorf("batch of a changed input: %v", err)
	}
	if _, err := got.plans[0].batch(strings.NewReader(in[:40])); err == nil || !strings.Contains(err.Error(), "read the input again") {
		t.Errorf("batch of a truncated input: %v", err)
	}
	long := `{"session_id":"a","item":{"t":"` + strings.Repeat("x", 60) + `"}}` + "\n"
	plan, err := planImport(strings.NewReader(long))
	if err != nil || len(plan.plans) != 1 {
		t.Fatalf("planImport = %+v, %v", plan, err)
	}
	for _, c := range []struct{ first, second, want string }{
		{`{"session_id":"a","item":{"n":1}}`, `{"session_id":"a","item":{"n":2}}`, "a session has other lines than before"},
		{`{"session_id":"z","item":{"t":"` + strings.Repeat("x", 60) + `"}}`, "", "a line moved to another session"},
	} {
		changed := c.first + "\n"
		if c.second != "" {
			changed += c.second + strings.Repeat(" ", len(long)-len(changed)-len(c.second)-1) + "\n"
		}
		if len(changed) != len(long) {
			t.Fatalf("the changed input has %d bytes, not %d", len(changed), len(long))
		}
		if _, err := plan.plans[0].batch(strings.NewReader(changed)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("batch of %q: %v; want an error saying %q", changed, err, c.want)
		}
	}

	// Bad lines are counted; the first maxBadShown are kept to report.
	bad := strings.Repeat("not json\n", 1000) + `{"session_id":"a","item":{}}` + "\n"
	got, err = planImport(strings.NewReader(bad))
	if err != nil || got.badLines != 1000 || len(got.bad) != maxBadShown || got.bad[maxBadShown-1].n != maxBadShown || got.lines != 1001 {
		t.Fatalf("planImport of 1000 bad lines: %d bad, %d kept, %d lines, %v", got.badLines, len(got.bad), got.lines, err)
	}
}

// missingTable knows PostgreSQL's undefined_table and SQLite's message,
// however wrapped, and nothing else.
func TestMissingTable(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("list sessions: %w", &pgconn.PgError{Code: "42P01", Message: `relation "agent_sessions" does not exist`}), true},
		{fmt.Errorf("list sessions: %w", errors.New("SQL logic error: no such table: agent_sessions (1)")), true},
		{&pgconn.PgError{Code: "42703", Message: "column does not exist"}, false},
		{errors.New("connection refused"), false},
	} {
		if got := missingTable(tt.err); got != tt.want {
			t.Errorf("missingTable(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}
