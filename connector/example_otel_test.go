package connector_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/databricks/databricks-sdk-go"
	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/lakesession/lakesession/connector"
	"github.com/lakesession/lakesession/lakebasecred"
)

// statementSpans is a pgx.QueryTracer that makes a client span per
// statement, named after its first word, with the statement's text, never
// its arguments (they hold the items' content). otelpgx's tracer does the
// same and more (batches, COPY, prepares, connects).
type statementSpans struct {
	tracer trace.Tracer
}

func (s statementSpans) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	name := data.SQL
	for i, r := range name {
		if r == ' ' || r == '\n' {
			name = name[:i]
			break
		}
	}
	ctx, _ = s.tracer.Start(ctx, name,
		trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(
			attribute.String("db.system.name", "postgresql"),
			attribute.String("db.query.text", data.SQL),
		))
	return ctx
}

func (s statementSpans) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryEndData) {
	span := trace.SpanFromContext(ctx)
	if data.Err != nil {
		span.RecordError(data.Err)
		span.SetStatus(codes.Error, data.Err.Error())
	}
	span.End()
}

// A span per statement, under the caller's spans (the store's
// lakesession.GetItems, ...), with the tracer the application already
// uses. With otelpgx (github.com/exaring/otelpgx), the tracer is
// otelpgx.NewTracer():
//
//	c, err := connector.ForLakebase(src, connector.WithQueryTracer(otelpgx.NewTracer()))
//
// Here a small tracer of one's own stands in for it.
func ExampleWithQueryTracer() {
	ctx := context.Background()
	w, err := databricks.NewWorkspaceClient()
	if err != nil {
		log.Fatal(err)
	}
	src, err := lakebasecred.New(ctx, w, lakebasecred.Target{Instance: "my-instance"})
	if err != nil {
		log.Fatal(err)
	}
	defer src.Close()

	c, err := connector.ForLakebase(src,
		connector.WithQueryTracer(statementSpans{tracer: otel.Tracer("example.com/myservice/sql")}),
	)
	if err != nil {
		log.Fatal(err)
	}
	db := connector.OpenDB(c)
	defer db.Close()

	ctx, span := otel.Tracer("example.com/myservice").Start(ctx, "handle request")
	defer span.End()
	var now string
	// One span "SELECT" under "handle request", and lakesession.connect
	// when the pool opens a connection for it.
	if err := db.QueryRowContext(ctx, "SELECT now()::text").Scan(&now); err != nil {
		log.Fatal(err)
	}
}

// failingTokens is a token source whose secret store is down.
type failingTokens struct{}

func (failingTokens) Token(context.Context) (string, error) {
	return "", errors.New("the secret store is sealed")
}
func (failingTokens) Invalidate() {}

// Each Connect is a span lakesession.connect with the server's address and
// port, the database and the number of attempts, and on failure status
// Error and error.type. The providers default to the global ones
// (otel.SetTracerProvider); here the spans go to an in-memory recorder.
func ExampleConfig_tracerProvider() {
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	defer tp.Shutdown(context.Background())

	c, err := connector.New(connector.Config{
		Host:           "db.internal.example.com",
		User:           "app",
		Database:       "app",
		Tokens:         failingTokens{},
		TracerProvider: tp,
		// MeterProvider: mp, for lakesession.connect.duration, .attempts
		// and .auth_rejected.
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Connect(context.Background()); err == nil {
		log.Fatal("connected without a token")
	}

	sp := spans.Ended()[0]
	fmt.Println(sp.Name(), sp.SpanKind(), sp.Status().Code)
	for _, kv := range sp.Attributes() {
		fmt.Printf("%s=%s\n", kv.Key, kv.Value.String())
	}
	// Output:
	// lakesession.connect client Error
	// db.namespace=app
	// db.system.name=postgresql
	// server.address=db.internal.example.com
	// server.port=5432
	// lakesession.connect.attempts=1
	// error.type=token_source
}
