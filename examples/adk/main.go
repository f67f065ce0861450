package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"strings"
	"time"

	"github.com/databricks/databricks-sdk-go"
	"github.com/jackc/pgx/v5"
	"google.golang.org/adk/v2/agent"
	"google.golang.org/adk/v2/agent/llmagent"
	"google.golang.org/adk/v2/model"
	"google.golang.org/adk/v2/model/gemini"
	"google.golang.org/adk/v2/runner"
	"google.golang.org/adk/v2/session"
	"google.golang.org/adk/v2/session/database"
	"google.golang.org/adk/v2/tool"
	"google.golang.org/adk/v2/tool/functiontool"
	"google.golang.org/genai"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/lakesession/lakesession/connector"
	"github.com/lakesession/lakesession/lakebasecred"
)

const (
	// appName is the ADK application name: sessions are keyed by
	// (app name, user id, session id).
	appName = "lakebase_adk_example"
	// userID is the user of the example's conversation.
	userID = "user-789"
	// defaultSchema holds ADK's tables (sessions, events, app_states,
	// user_states) unless ADK_SCHEMA names another.
	defaultSchema = "adk"
	// applicationName is the application_name of the example's connections.
	applicationName = "adk-example"
)

// conversation is what the example says to the agent, one turn each.
var conversation = []string{
	"Hello I live in SF!",
	"What city did I say I live in?",
	"What's the weather where I live?",
}

func main() {
	ctx := context.Background()
	db, schema, closeDB, err := openDB(ctx, os.Getenv)
	if err == nil {
		var llm model.LLM
		llm, err = newModel(ctx, os.Getenv)
		if err == nil {
			_, err = run(ctx, db, schema, llm, os.Stdout)
		}
		closeDB()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "adk:", err)
		os.Exit(1)
	}
}

// openDB opens the *sql.DB that ADK's session service runs on, and returns
// the schema its connections use (ADK_SCHEMA, default "adk"). The returned
// function closes the pool and the Lakebase token source.
func openDB(ctx context.Context, getenv func(string) string) (*sql.DB, string, func(), error) {
	target := lakebasecred.Target{
		Instance: getenv("LAKEBASE_INSTANCE_NAME"),
		Endpoint: getenv("LAKEBASE_ENDPOINT"),
		Project:  getenv("LAKEBASE_PROJECT"),
		Branch:   getenv("LAKEBASE_BRANCH"),
	}
	schema := getenv("ADK_SCHEMA")
	if schema == "" {
		schema = defaultSchema
	}
	copts := []connector.Option{connector.WithSchema(schema), connector.WithApplicationName(applicationName)}
	dsn := getenv("DATABASE_URL")
	switch {
	case target != (lakebasecred.Target{}) && dsn != "":
		return nil, "", nil, errors.New("set DATABASE_URL or a LAKEBASE_* target, not both")
	case target != (lakebasecred.Target{}):
		w, err := databricks.NewWorkspaceClient()
		if err != nil {
			return nil, "", nil, fmt.Errorf("authenticate to Databricks (set DATABRICKS_HOST and DATABRICKS_TOKEN, or another DATABRICKS_* method): %w", err)
		}
		var opts []lakebasecred.Option
		if d := getenv("LAKEBASE_DATABASE"); d != "" {
			opts = append(opts, lakebasecred.WithDatabase(d))
		}
		db, closeDB, err := openLakebase(ctx, w, target, copts, opts...)
		return db, schema, closeDB, err
	case dsn != "":
		c, err := connector.New(connector.Config{DSN: dsn, Schema: schema, ApplicationName: applicationName})
		if err != nil {
			return nil, "", nil, err
		}
		db := connector.OpenDB(c)
		return db, schema, func() { db.Close() }, nil
	default:
		return nil, "", nil, errors.New("set LAKEBASE_INSTANCE_NAME (or LAKEBASE_ENDPOINT, or LAKEBASE_PROJECT and LAKEBASE_BRANCH) with DATABRICKS_* authentication, or DATABASE_URL")
	}
}

// openLakebase opens a *sql.DB on the Lakebase database of target: every new
// connection logs in with the source's current OAuth token.
func openLakebase(ctx context.Context, w *databricks.WorkspaceClient, target lakebasecred.Target, copts []connector.Option, opts ...lakebasecred.Option) (*sql.DB, func(), error) {
	src, err := lakebasecred.New(ctx, w, target, opts...)
	if err != nil {
		return nil, nil, err
	}
	c, err := connector.ForLakebase(src, copts...)
	if err != nil {
		src.Close()
		return nil, nil, err
	}
	db := connector.OpenDB(c)
	return db, func() { db.Close(); src.Close() }, nil
}

// newModel returns Gemini when GOOGLE_API_KEY is set (GEMINI_MODEL names the
// model, default gemini-2.5-flash), and the offline model otherwise.
func newModel(ctx context.Context, getenv func(string) string) (model.LLM, error) {
	key := getenv("GOOGLE_API_KEY")
	if key == "" {
		return offlineModel{}, nil
	}
	name := getenv("GEMINI_MODEL")
	if name == "" {
		name = "gemini-2.5-flash"
	}
	llm, err := gemini.NewModel(ctx, name, &genai.ClientConfig{APIKey: key, Backend: genai.BackendGeminiAPI})
	if err != nil {
		return nil, fmt.Errorf("create the Gemini model %q: %w", name, err)
	}
	return llm, nil
}

// newSessionService returns ADK's own database session service
// (google.golang.org/adk/v2/session/database) on db, with its tables in
// schema. GORM's PostgreSQL driver is given db as its connection pool, so
// every query ADK makes runs on db's connections, which the connector logs in
// with the current Lakebase token; GORM opens no pool of its own. db must be
// opened with that schema first on its search_path (connector.WithSchema).
func newSessionService(ctx context.Context, db *sql.DB, schema string) (session.Service, error) {
	if _, err := db.ExecContext(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{schema}.Sanitize()); err != nil {
		return nil, fmt.Errorf("create schema %q for the ADK tables (or create it beforehand and grant the role USAGE and CREATE on it): %w", schema, err)
	}
	var current sql.NullString
	if err := db.QueryRowContext(ctx, "SELECT current_schema()").Scan(&current); err != nil {
		return nil, fmt.Errorf("read the current schema: %w", err)
	}
	if current.String != schema {
		return nil, fmt.Errorf("the connections' current schema is %q, not %q: open the *sql.DB with connector.WithSchema(%q)", current.String, schema, schema)
	}
	svc, err := database.NewSessionService(
		postgres.New(postgres.Config{Conn: db}),
		&gorm.Config{
			// Warnings and errors only, with the statements' parameters left
			// out, so that no message content reaches the log.
			Logger: logger.New(log.New(os.Stderr, "gorm: ", log.LstdFlags), logger.Config{
				SlowThreshold:             time.Second,
				LogLevel:                  logger.Warn,
				IgnoreRecordNotFoundError: true,
				ParameterizedQueries:      true,
			}),
		})
	if err != nil {
		return nil, err
	}
	if err := database.AutoMigrate(svc); err != nil {
		return nil, fmt.Errorf("create the ADK session tables in schema %q: %w", schema, err)
	}
	return svc, nil
}

// weatherArgs are the arguments of the get_weather tool.
type weatherArgs struct {
	City string `json:"city" jsonschema:"the city, for example SF or Paris"`
}

// weatherResult is what get_weather returns.
type weatherResult struct {
	City     string `json:"city"`
	Forecast string `json:"forecast"`
}

// forecasts is get_weather's fixed table: the example makes no network call.
var forecasts = map[string]string{
	"sf":            "fog in the morning, then sun, 18 °C",
	"san francisco": "fog in the morning, then sun, 18 °C",
	"paris":         "light rain, 14 °C",
	"lisbon":        "sunny, 24 °C",
}

// getWeather answers get_weather from the fixed table.
func getWeather(_ agent.Context, args weatherArgs) (weatherResult, error) {
	city := strings.TrimSpace(args.City)
	if city == "" {
		return weatherResult{}, errors.New("get_weather needs a city")
	}
	f, ok := forecasts[strings.ToLower(city)]
	if !ok {
		f = "no forecast for this city in the example's table"
	}
	return weatherResult{City: city, Forecast: f}, nil
}

// newRunner returns an ADK runner of a weather agent on llm whose sessions
// are kept by svc.
func newRunner(svc session.Service, llm model.LLM) (*runner.Runner, error) {
	weather, err := functiontool.New(functiontool.Config{
		Name:        "get_weather",
		Description: "Returns today's weather forecast for a city.",
	}, getWeather)
	if err != nil {
		return nil, err
	}
	a, err := llmagent.New(llmagent.Config{
		Name:        "weather_agent",
		Model:       llm,
		Description: "Answers questions about the user and the weather where they live.",
		Instruction: "Remember what the user tells you about themselves. When asked about the weather, call get_weather with the city.",
		Tools:       []tool.Tool{weather},
	})
	if err != nil {
		return nil, err
	}
	return runner.New(runner.Config{AppName: appName, Agent: a, SessionService: svc})
}

// ask runs one agent turn in the session and returns the agent's final text
// answer. It prints the turn's events to out.
func ask(ctx context.Context, r *runner.Runner, sessionID, text string, out io.Writer) (string, error) {
	fmt.Fprintf(out, "\nuser: %s\n", text)
	var answer string
	for ev, err := range r.Run(ctx, userID, sessionID, genai.NewContentFromText(text, genai.RoleUser), agent.RunConfig{}) {
		if err != nil {
			return "", fmt.Errorf("agent turn %q: %w", text, err)
		}
		if ev == nil || ev.Partial {
			continue
		}
		fmt.Fprintf(out, "  %s: %s\n", ev.Author, describe(ev.Content))
		if t := textOf(ev.Content); t != "" {
			answer = t
		}
	}
	if answer == "" {
		return "", fmt.Errorf("agent turn %q: no text answer", text)
	}
	return answer, nil
}

// run is the example: ADK's session service on db, a session, the
// conversation's turns through the ADK runner, and the session's events read
// back from the database. It returns the session id.
func run(ctx context.Context, db *sql.DB, schema string, llm model.LLM, out io.Writer) (string, error) {
	svc, err := newSessionService(ctx, db, schema)
	if err != nil {
		return "", err
	}
	r, err := newRunner(svc, llm)
	if err != nil {
		return "", err
	}
	created, err := svc.Create(ctx, &session.CreateRequest{AppName: appName, UserID: userID})
	if err != nil {
		return "", fmt.Errorf("create an ADK session: %w", err)
	}
	id := created.Session.ID()
	fmt.Fprintf(out, "ADK session %s of %s (model %s), stored in schema %s\n", id, userID, llm.Name(), schema)
	for _, text := range conversation {
		if _, err := ask(ctx, r, id, text, out); err != nil {
			return "", err
		}
	}
	n, err := printEvents(ctx, svc, id, out)
	if err != nil {
		return "", err
	}
	st := db.Stats()
	fmt.Fprintf(out, "%d events stored; one pool: %d open connections, at most %d\n", n, st.OpenConnections, st.MaxOpenConnections)
	return id, nil
}

// printEvents reads the session back through session.Service.Get and prints
// its events, oldest first. It returns how many there are.
func printEvents(ctx context.Context, svc session.Service, sessionID string, out io.Writer) (int, error) {
	got, err := svc.Get(ctx, &session.GetRequest{AppName: appName, UserID: userID, SessionID: sessionID})
	if err != nil {
		return 0, fmt.Errorf("read ADK session %s back: %w", sessionID, err)
	}
	events := got.Session.Events()
	fmt.Fprintf(out, "\nthe events of session %s, read back from the database:\n", sessionID)
	for i := range events.Len() {
		ev := events.At(i)
		fmt.Fprintf(out, "  %d. %s %s: %s\n", i+1, ev.Timestamp.UTC().Format("15:04:05.000000"), ev.Author, describe(ev.Content))
	}
	return events.Len(), nil
}

// describe shows a content's parts on one line.
func describe(c *genai.Content) string {
	if c == nil {
		return "(no content)"
	}
	var parts []string
	for _, p := range c.Parts {
		switch {
		case p.FunctionCall != nil:
			parts = append(parts, fmt.Sprintf("function_call %s(%v)", p.FunctionCall.Name, p.FunctionCall.Args))
		case p.FunctionResponse != nil:
			parts = append(parts, fmt.Sprintf("function_response %s %v", p.FunctionResponse.Name, p.FunctionResponse.Response))
		case p.Text != "":
			parts = append(parts, p.Text)
		}
	}
	return strings.Join(parts, " | ")
}

// textOf returns the text parts of c, joined.
func textOf(c *genai.Content) string {
	if c == nil {
		return ""
	}
	var b strings.Builder
	for _, p := range c.Parts {
		if p.Text != "" && !p.Thought {
			b.WriteString(p.Text)
		}
	}
	return b.String()
}
