package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/databricks/databricks-sdk-go"
	"github.com/openai/openai-go/v3/option"

	"github.com/lakesession/lakesession"
	"github.com/lakesession/lakesession/examples/agentserver/agent"
	"github.com/lakesession/lakesession/examples/agentserver/storage"
	"github.com/lakesession/lakesession/examples/agentserver/telemetry"
)

// shutdownTimeout bounds how long requests in flight may take to finish
// after a stop signal.
const shutdownTimeout = 30 * time.Second

// telemetryShutdownTimeout bounds how long the last spans and metrics may
// take to be exported at exit.
const telemetryShutdownTimeout = 10 * time.Second

func exporterNames(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ",")
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr, nil); err != nil {
		fmt.Fprintln(os.Stderr, "agentserver:", err)
		os.Exit(1)
	}
}

// run serves until ctx is done, then shuts down gracefully. ready, when not
// nil, is called with the listening address once requests are accepted.
// Logs go to stderr, and spans and metrics to stdout when
// OTEL_TRACES_EXPORTER or OTEL_METRICS_EXPORTER is console.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, ready func(addr string)) error {
	fs := flag.NewFlagSet("agentserver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", defaultAddr(getenv), "listen address")
	historyLimit := fs.Int("history-limit", 0, "how many of the latest history items the model sees (0: all; default $HISTORY_LIMIT)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if v := getenv("HISTORY_LIMIT"); v != "" && !flagSet(fs, "history-limit") {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return fmt.Errorf("HISTORY_LIMIT=%q: want a whole number of items, 0 for all", v)
		}
		*historyLimit = n
	}
	if *historyLimit < 0 {
		return fmt.Errorf("-history-limit %d: want a whole number of items, 0 for all", *historyLimit)
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))

	// Telemetry first, so that the spans of opening the storage are
	// recorded too, and shut down last, so that every span is flushed.
	tcfg, err := telemetry.FromEnv(getenv)
	if err != nil {
		return err
	}
	tcfg.Stdout = stdout
	shutdownTelemetry, err := telemetry.Setup(ctx, tcfg)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), telemetryShutdownTimeout)
		defer cancel()
		if err := shutdownTelemetry(sctx); err != nil {
			logger.Warn("telemetry: could not flush every span and metric", "err", err)
		}
	}()

	model, err := modelFromEnv(getenv)
	if err != nil {
		return err
	}
	st, err := storage.Open(ctx, storage.FromEnv(getenv))
	if err != nil {
		return err
	}
	defer st.Close()

	h := &agent.Handler{
		Sessions:     func(id string) lakesession.Session { return st.Store.Session(id) },
		Model:        model,
		Tools:        []agent.Tool{agent.WeatherTool()},
		HistoryLimit: *historyLimit,
		Logger:       logger,
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           telemetry.Handler(h),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	logger.Info("listening", "url", "http://"+ln.Addr().String(), "storage", st.Description,
		"model", model.Name(), "history_limit", *historyLimit,
		"otel_traces", exporterNames(tcfg.Traces), "otel_metrics", exporterNames(tcfg.Metrics))
	if ready != nil {
		ready(ln.Addr().String())
	}

	select {
	case err := <-serveErr:
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down: finishing requests in flight")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-serveErr; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	logger.Info("stopped")
	return nil
}

func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func defaultAddr(getenv func(string) string) string {
	if a := getenv("ADDR"); a != "" {
		return a
	}
	if p := getenv("DATABRICKS_APP_PORT"); p != "" {
		return ":" + p
	}
	return "127.0.0.1:8000"
}

// modelFromEnv returns the OpenAI-compatible model when any OPENAI_*
// variable of it is set, the Databricks serving endpoint model when
// DATABRICKS_SERVING_ENDPOINT is, and the offline model otherwise.
func modelFromEnv(getenv func(string) string) (agent.Model, error) {
	baseURL, key, name := getenv("OPENAI_BASE_URL"), getenv("OPENAI_API_KEY"), getenv("OPENAI_MODEL")
	endpoint := getenv("DATABRICKS_SERVING_ENDPOINT")
	openAI := baseURL != "" || key != "" || name != ""
	switch {
	case openAI && endpoint != "":
		return nil, errors.New("both OPENAI_* and DATABRICKS_SERVING_ENDPOINT are set; unset one of them")
	case openAI:
		return agent.NewOpenAIModel(agent.OpenAIConfig{
			BaseURL:      baseURL,
			APIKey:       key,
			Model:        name,
			Instructions: getenv("AGENT_INSTRUCTIONS"),
			Options:      []option.RequestOption{tracedHTTPClient()},
		})
	case endpoint != "":
		w, err := databricks.NewWorkspaceClient()
		if err != nil {
			return nil, fmt.Errorf("DATABRICKS_SERVING_ENDPOINT: Databricks authentication (set DATABRICKS_HOST and DATABRICKS_TOKEN, or another DATABRICKS_* method): %w", err)
		}
		return agent.NewDatabricksModel(agent.DatabricksConfig{
			Workspace:    w,
			Endpoint:     endpoint,
			Instructions: getenv("AGENT_INSTRUCTIONS"),
			Options:      []option.RequestOption{tracedHTTPClient()},
		})
	default:
		return agent.OfflineModel{}, nil
	}
}

// tracedHTTPClient makes the model's client record an HTTP client span per
// call of the endpoint, under the turn's "chat" span.
func tracedHTTPClient() option.RequestOption {
	return option.WithHTTPClient(&http.Client{Transport: telemetry.Transport(nil)})
}
