package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver, for the superuser pool
	"google.golang.org/adk/v2/agent"
	"google.golang.org/adk/v2/model"
	"google.golang.org/adk/v2/session"
	"google.golang.org/genai"

	"github.com/lakesession/lakesession/connector"
	"github.com/lakesession/lakesession/internal/leakcheck"
	"github.com/lakesession/lakesession/internal/testdb"
	"github.com/lakesession/lakesession/lakebasecred"
	"github.com/lakesession/lakesession/lakebasecred/lakebasetest"
)

func TestMain(m *testing.M) {
	// Every pool, token source and GORM handle the tests open is closed.
	leakcheck.Main(m, "lakebasecred.(*Source)", "database/sql.(*DB)", "gorm.io/")
}

// postgresEnv returns a getenv that names one DSN as DATABASE_URL.
func postgresEnv(dsn string) func(string) string {
	return func(k string) string {
		if k == "DATABASE_URL" {
			return dsn
		}
		return ""
	}
}

func TestPostgres(t *testing.T) {
	ctx := context.Background()
	dsn := testdb.NewDatabase(t)
	db, schema, closeDB, err := openDB(ctx, postgresEnv(dsn))
	if err != nil {
		t.Fatal(err)
	}
	defer closeDB()
	if schema != defaultSchema {
		t.Errorf("schema %q, want %q", schema, defaultSchema)
	}
	// Twice: the second run finds the tables made by the first.
	var ids []string
	for round := 1; round <= 2; round++ {
		var out bytes.Buffer
		id, err := run(ctx, db, schema, offlineModel{}, &out)
		if err != nil {
			t.Fatalf("round %d: %v\n%s", round, err, out.String())
		}
		ids = append(ids, id)
		for _, w := range []string{
			"[offline demo model] You said you live in SF.",
			"function_call get_weather(map[city:SF])",
			"[offline demo model] The weather in SF: fog in the morning, then sun, 18 °C.",
			"8 events stored",
		} {
			if !strings.Contains(out.String(), w) {
				t.Errorf("round %d: output lacks %q:\n%s", round, w, out.String())
			}
		}
	}
	if ids[0] == ids[1] {
		t.Errorf("both runs used session %s, want a new session each", ids[0])
	}
	var sessions, events int
	if err := db.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM adk.sessions WHERE app_name = $1), (SELECT count(*) FROM adk.events WHERE app_name = $1)`,
		appName).Scan(&sessions, &events); err != nil {
		t.Fatal(err)
	}
	if sessions != 2 || events != 16 {
		t.Errorf("%d sessions and %d events in schema adk, want 2 and 16", sessions, events)
	}
	checkTables(t, db, "adk", "")
}

// checkTables checks that ADK's four tables are in schema, owned by owner
// when owner is not empty, and that none is in public.
func checkTables(t *testing.T, db *sql.DB, schema, owner string) {
	t.Helper()
	rows, err := db.Query(`SELECT schemaname, tablename, tableowner FROM pg_tables
		WHERE tablename IN ('sessions', 'events', 'app_states', 'user_states') ORDER BY tablename`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var s, name, o string
		if err := rows.Scan(&s, &name, &o); err != nil {
			t.Fatal(err)
		}
		got = append(got, name)
		if s != schema {
			t.Errorf("table %s is in schema %s, want %s", name, s, schema)
		}
		if owner != "" && o != owner {
			t.Errorf("table %s.%s is owned by %q, want %q", s, name, o, owner)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if want := "app_states events sessions user_states"; strings.Join(got, " ") != want {
		t.Errorf("ADK tables %q, want %q", got, want)
	}
}

func TestSessionServiceNeedsItsSchema(t *testing.T) {
	ctx := context.Background()
	// A pool whose connections do not put the schema first on search_path:
	// GORM would make and look for the tables in public.
	c, err := connector.New(connector.Config{DSN: testdb.NewDatabase(t)})
	if err != nil {
		t.Fatal(err)
	}
	db := connector.OpenDB(c)
	defer db.Close()
	_, err = newSessionService(ctx, db, "adk")
	if err == nil || !strings.Contains(err.Error(), `connector.WithSchema("adk")`) {
		t.Fatalf("error %v, want one that says to open the pool with connector.WithSchema", err)
	}
	var tables int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM pg_tables WHERE tablename IN ('sessions', 'events')`).Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if tables != 0 {
		t.Errorf("%d ADK tables were made anyway", tables)
	}
}

// lakebase is a Lakebase stand-in on the test PostgreSQL: the lakebasetest
// control plane, whose instance is that server, and whose every minted token
// becomes the password of a real role there, valid until the token expires.
type lakebase struct {
	fake     *lakebasetest.Server
	admin    *sql.DB // a superuser pool
	role     string
	database string // owned by role
	port     uint16
	copts    []connector.Option
}

const instanceName = "adk-instance"

func newLakebase(t *testing.T) *lakebase {
	t.Helper()
	ctx := context.Background()
	adminDSN := testdb.AdminDSN(t)
	rootCert := testdb.SSLRootCert(t)
	pc, err := pgx.ParseConfig(adminDSN)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := sql.Open("pgx", adminDSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })

	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	role := "adk-" + hex.EncodeToString(b[:]) + "@example.com"
	if _, err := admin.ExecContext(ctx, "CREATE ROLE "+pgx.Identifier{role}.Sanitize()+" LOGIN"); err != nil {
		t.Fatalf("create role: %v", err)
	}
	// Registered before the database's cleanup, so it runs after the
	// database is dropped.
	t.Cleanup(func() {
		if _, err := admin.ExecContext(context.Background(), "DROP ROLE IF EXISTS "+pgx.Identifier{role}.Sanitize()); err != nil {
			t.Errorf("drop role: %v", err)
		}
	})
	dbc, err := pgx.ParseConfig(testdb.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.ExecContext(ctx, "ALTER DATABASE "+pgx.Identifier{dbc.Database}.Sanitize()+" OWNER TO "+pgx.Identifier{role}.Sanitize()); err != nil {
		t.Fatalf("give the database to the role: %v", err)
	}

	fake := lakebasetest.NewServer(t)
	fake.SetUserName(role)
	fake.AddInstance(lakebasetest.Instance{Name: instanceName, ReadWriteDNS: "127.0.0.1"})
	fake.OnMint(func(m lakebasetest.Mint) error {
		_, err := admin.ExecContext(context.Background(), m.AlterRoleSQL())
		return err
	})
	return &lakebase{
		fake:     fake,
		admin:    admin,
		role:     role,
		database: dbc.Database,
		port:     pc.Port,
		copts: []connector.Option{
			connector.WithPort(int(pc.Port)),
			connector.WithSSLMode("verify-full"),
			connector.WithSSLRootCert(rootCert),
			connector.WithSchema(defaultSchema),
			connector.WithApplicationName(applicationName),
		},
	}
}

// open opens the example's pool on the stand-in, as openDB does on Lakebase.
func (lb *lakebase) open(t *testing.T) (*sql.DB, func()) {
	t.Helper()
	db, closeDB, err := openLakebase(context.Background(), lb.fake.WorkspaceClient(),
		lakebasecred.Target{Instance: instanceName}, lb.copts, lakebasecred.WithDatabase(lb.database))
	if err != nil {
		t.Fatal(err)
	}
	return db, closeDB
}

// turn is one agent turn as the runner yielded it.
type turn struct {
	answer   string
	eventIDs []string
}

// askTurn runs one turn and records the ids of the events the runner
// yielded, which it also stored.
func askTurn(t *testing.T, svc session.Service, llm model.LLM, sessionID, text string) turn {
	t.Helper()
	r, err := newRunner(svc, llm)
	if err != nil {
		t.Fatal(err)
	}
	var tr turn
	for ev, err := range r.Run(context.Background(), userID, sessionID, genai.NewContentFromText(text, genai.RoleUser), agent.RunConfig{}) {
		if err != nil {
			t.Fatalf("turn %q: %v", text, err)
		}
		if ev == nil || ev.Partial {
			continue
		}
		tr.eventIDs = append(tr.eventIDs, ev.ID)
		if s := textOf(ev.Content); s != "" {
			tr.answer = s
		}
	}
	return tr
}

func TestLakebaseTokenRotation(t *testing.T) {
	ctx := context.Background()
	lb := newLakebase(t)
	// Tokens live 3 s and pooled connections are retired after 1 s: as
	// OpenDB retires connections (45 minutes) before Lakebase's tokens
	// expire (one hour), only faster.
	const tokenLifetime, connLifetime = 3 * time.Second, time.Second
	lb.fake.SetTokenLifetime(tokenLifetime)
	db, closeDB := lb.open(t)
	defer closeDB()
	db.SetConnMaxLifetime(connLifetime)

	svc, err := newSessionService(ctx, db, defaultSchema)
	if err != nil {
		t.Fatal(err)
	}
	created, err := svc.Create(ctx, &session.CreateRequest{AppName: appName, UserID: userID})
	if err != nil {
		t.Fatal(err)
	}
	id := created.Session.ID()
	first := askTurn(t, svc, offlineModel{}, id, "Hello I live in SF!")
	turn1End := time.Now()

	// Wait until every token minted so far has expired, and every
	// connection opened so far is past its lifetime.
	before := lb.fake.Mints()
	if len(before) == 0 {
		t.Fatal("no token was minted: the Lakebase path was not used")
	}
	lastExpiry := before[len(before)-1].ExpireTime
	wait := max(time.Until(lastExpiry), time.Until(turn1End.Add(connLifetime))) + 200*time.Millisecond
	time.Sleep(wait)

	// The old token no longer logs in, as on Lakebase after its expiry.
	old := before[len(before)-1]
	oldDSN := (&url.URL{Scheme: "postgres", User: url.UserPassword(lb.role, old.Token),
		Host: fmt.Sprintf("127.0.0.1:%d", lb.port), Path: "/" + lb.database, RawQuery: "sslmode=require"}).String()
	if conn, err := pgx.Connect(ctx, oldDSN); err == nil {
		conn.Close(ctx)
		t.Fatal("the expired token still logs in: the test proves nothing")
	} else if pgErr := (*pgconn.PgError)(nil); !errors.As(err, &pgErr) || pgErr.Code != "28P01" {
		t.Fatalf("login with the expired token: %v, want SQLSTATE 28P01", err)
	}

	// The same session service keeps working: the runner reads the history
	// back and appends the next turns over connections that log in with a
	// new token.
	second := askTurn(t, svc, offlineModel{}, id, "What city did I say I live in?")
	if want := offlinePrefix + "You said you live in SF."; second.answer != want {
		t.Errorf("second answer %q, want %q", second.answer, want)
	}
	third := askTurn(t, svc, offlineModel{}, id, "What's the weather where I live?")
	if want := offlinePrefix + "The weather in SF: fog in the morning, then sun, 18 °C."; third.answer != want {
		t.Errorf("third answer %q, want %q", third.answer, want)
	}
	if n := lb.fake.MintCount(); n <= len(before) {
		t.Errorf("%d tokens minted in all, %d before the wait: no new token", n, len(before))
	}
	if st := db.Stats(); st.MaxLifetimeClosed == 0 {
		t.Errorf("no connection was retired for its age: %+v", st)
	}
	// Connections of the role that logged in after the old token expired:
	// each used a token minted after the wait, since a new mint is the only
	// way the role gets a valid password. All are the connector's, over TLS.
	var newLogins, foreign, plain int
	err = lb.admin.QueryRowContext(ctx, `SELECT
			count(*) FILTER (WHERE a.backend_start > $3),
			count(*) FILTER (WHERE a.application_name <> $4),
			count(*) FILTER (WHERE NOT s.ssl)
		FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
		WHERE a.usename = $1 AND a.datname = $2`,
		lb.role, lb.database, lastExpiry, applicationName).Scan(&newLogins, &foreign, &plain)
	if err != nil {
		t.Fatal(err)
	}
	if newLogins == 0 || foreign != 0 || plain != 0 {
		t.Errorf("connections of the role: %d logged in after the old token expired (want > 0), %d not the connector's (application_name), %d without TLS; want 0 and 0",
			newLogins, foreign, plain)
	}

	// ADK's writes round-trip: a new session service on a new pool (and a
	// new token source) reads the session back with every event the runner
	// yielded, in order, with the tool call and its response intact.
	db2, closeDB2 := lb.open(t)
	defer closeDB2()
	svc2, err := newSessionService(ctx, db2, defaultSchema)
	if err != nil {
		t.Fatal(err)
	}
	got, err := svc2.Get(ctx, &session.GetRequest{AppName: appName, UserID: userID, SessionID: id})
	if err != nil {
		t.Fatal(err)
	}
	var wantIDs, gotIDs []string
	for _, tr := range []turn{first, second, third} {
		wantIDs = append(wantIDs, tr.eventIDs...)
	}
	events := got.Session.Events()
	var call *genai.FunctionCall
	var resp *genai.FunctionResponse
	for i := range events.Len() {
		ev := events.At(i)
		gotIDs = append(gotIDs, ev.ID)
		if ev.Content == nil {
			continue
		}
		for _, p := range ev.Content.Parts {
			if p.FunctionCall != nil {
				call = p.FunctionCall
			}
			if p.FunctionResponse != nil {
				resp = p.FunctionResponse
			}
		}
	}
	// The runner stores each user message as an event it does not yield:
	// one per turn, first in the turn.
	if len(gotIDs) != len(wantIDs)+3 {
		t.Errorf("%d events read back, want the %d yielded plus 3 user messages", len(gotIDs), len(wantIDs))
	}
	if !isSubsequence(wantIDs, gotIDs) {
		t.Errorf("events read back %q do not hold the yielded events %q in order", gotIDs, wantIDs)
	}
	if call == nil || call.Name != "get_weather" || call.Args["city"] != "SF" {
		t.Errorf("function call read back: %+v, want get_weather(city=SF)", call)
	}
	if resp == nil || resp.Name != "get_weather" || resp.Response["forecast"] != forecasts["sf"] {
		t.Errorf("function response read back: %+v, want get_weather's forecast for SF", resp)
	}
	if call != nil && resp != nil && (call.ID == "" || call.ID != resp.ID) {
		t.Errorf("function call id %q and response id %q, want the same, not empty", call.ID, resp.ID)
	}
	checkTables(t, db2, defaultSchema, lb.role)
}

// isSubsequence reports whether sub appears in all in order.
func isSubsequence(sub, all []string) bool {
	i := 0
	for _, s := range all {
		if i < len(sub) && s == sub[i] {
			i++
		}
	}
	return i == len(sub)
}

func TestOpenDBConfiguration(t *testing.T) {
	for _, vars := range []map[string]string{
		{},
		{"DATABASE_URL": "postgres://x", "LAKEBASE_INSTANCE_NAME": "i"},
	} {
		_, _, _, err := openDB(context.Background(), func(k string) string { return vars[k] })
		if err == nil || !strings.Contains(err.Error(), "DATABASE_URL") {
			t.Errorf("%v: %v, want an error naming what to set", vars, err)
		}
	}
	_, _, _, err := openDB(context.Background(), func(k string) string {
		return map[string]string{"DATABASE_URL": "postgres://app@localhost/app", "ADK_SCHEMA": "adk; DROP"}[k]
	})
	var ce *connector.ConfigError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "Schema") {
		t.Errorf("ADK_SCHEMA %q: %v, want a *connector.ConfigError about the schema", "adk; DROP", err)
	}
}

func TestNewModel(t *testing.T) {
	llm, err := newModel(context.Background(), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if llm.Name() != offlineModelName {
		t.Errorf("without GOOGLE_API_KEY the model is %q, want the offline model", llm.Name())
	}
	env := map[string]string{"GOOGLE_API_KEY": "test-key", "GEMINI_MODEL": "gemini-test"}
	llm, err = newModel(context.Background(), func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if llm.Name() != "gemini-test" {
		t.Errorf("with GOOGLE_API_KEY the model is %q, want gemini-test", llm.Name())
	}
}

func TestOfflineModel(t *testing.T) {
	user := func(s string) *genai.Content { return genai.NewContentFromText(s, genai.RoleUser) }
	modelSays := func(s string) *genai.Content { return genai.NewContentFromText(s, genai.RoleModel) }
	withTool := map[string]any{"get_weather": nil}
	for _, tc := range []struct {
		name     string
		contents []*genai.Content
		tools    map[string]any
		text     string // the text answer, or
		call     string // the city of a get_weather call
	}{
		{name: "statement", contents: []*genai.Content{user("Hello I live in Paris!")}, text: "Noted: you live in Paris."},
		{name: "recall", contents: []*genai.Content{user("I live in SF."), modelSays("ok"), user("What city did I say I live in?")},
			text: "You said you live in SF."},
		{name: "latest statement wins", contents: []*genai.Content{user("I live in SF."), user("Now I live in Lisbon."), user("Where do I live?")},
			text: "You said you live in Lisbon."},
		{name: "a question is no statement", contents: []*genai.Content{user("Do I live in Rome?"), user("What city did I say I live in?")},
			text: "You have not told me where you live"},
		{name: "weather calls the tool", contents: []*genai.Content{user("I live in SF."), user("What's the weather where I live?")},
			tools: withTool, call: "SF"},
		{name: "no tool, no call", contents: []*genai.Content{user("I live in SF."), user("What's the weather where I live?")},
			text: "I am not a language model"},
		{name: "weather without a city", contents: []*genai.Content{user("What's the weather where I live?")}, tools: withTool,
			text: "You have not told me where you live"},
		{name: "the tool's response is the answer", tools: withTool, contents: []*genai.Content{
			user("What's the weather where I live?"),
			{Role: genai.RoleModel, Parts: []*genai.Part{genai.NewPartFromFunctionCall("get_weather", map[string]any{"city": "Paris"})}},
			{Role: genai.RoleUser, Parts: []*genai.Part{genai.NewPartFromFunctionResponse("get_weather", map[string]any{"city": "Paris", "forecast": "light rain, 14 °C"})}},
		}, text: "The weather in Paris: light rain, 14 °C."},
		{name: "anything else", contents: []*genai.Content{user("Tell me a joke")}, text: `You said: "Tell me a joke".`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []*model.LLMResponse
			for r, err := range (offlineModel{}).GenerateContent(context.Background(), &model.LLMRequest{Contents: tc.contents, Tools: tc.tools}, false) {
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, r)
			}
			if len(got) != 1 || got[0].Content == nil || got[0].Content.Role != genai.RoleModel {
				t.Fatalf("responses %+v, want one model content", got)
			}
			c := got[0].Content
			if tc.call != "" {
				if len(c.Parts) != 1 || c.Parts[0].FunctionCall == nil || c.Parts[0].FunctionCall.Name != "get_weather" ||
					c.Parts[0].FunctionCall.Args["city"] != tc.call {
					t.Fatalf("answer %s, want get_weather(city=%s)", describe(c), tc.call)
				}
				return
			}
			text := textOf(c)
			if !strings.HasPrefix(text, offlinePrefix) || !strings.Contains(text, tc.text) {
				t.Errorf("answer %q, want the offline prefix and %q", text, tc.text)
			}
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, err := range (offlineModel{}).GenerateContent(ctx, &model.LLMRequest{Contents: []*genai.Content{user("hi")}}, false) {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled context: %v, want context.Canceled", err)
		}
	}
}

func TestGetWeather(t *testing.T) {
	got, err := getWeather(nil, weatherArgs{City: " San Francisco "})
	if err != nil || got != (weatherResult{City: "San Francisco", Forecast: forecasts["san francisco"]}) {
		t.Errorf("San Francisco: %+v, %v", got, err)
	}
	got, err = getWeather(nil, weatherArgs{City: "Atlantis"})
	if err != nil || !strings.Contains(got.Forecast, "no forecast") {
		t.Errorf("Atlantis: %+v, %v; want no forecast", got, err)
	}
	if _, err := getWeather(nil, weatherArgs{}); err == nil {
		t.Error("no city: no error")
	}
}
