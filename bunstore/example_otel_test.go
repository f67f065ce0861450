package bunstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/lakesession/lakesession"
	"github.com/lakesession/lakesession/bunstore"
	"github.com/lakesession/lakesession/bunstore/sqlitedb"
)

// The store's spans, here kept in memory by the OpenTelemetry SDK. An
// application usually installs its SDK globally (otel.SetTracerProvider)
// and passes no option: the store uses the global providers.
func ExampleWithTracerProvider() {
	ctx := context.Background()
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	defer tp.Shutdown(ctx)

	db, err := sqlitedb.Open(":memory:")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	store, err := bunstore.New(db, bunstore.WithTracerProvider(tp))
	if err != nil {
		log.Fatal(err)
	}
	if err := store.CreateTables(ctx); err != nil {
		log.Fatal(err)
	}

	ctx, request := tp.Tracer("agent-server").Start(ctx, "POST /invocations")
	sess := store.Session("user-789")
	if err := sess.AddItems(ctx, []json.RawMessage{json.RawMessage(`{"role":"user","content":"Hello"}`)}); err != nil {
		log.Fatal(err)
	}
	if _, err := sess.GetItems(ctx, 20); err != nil {
		log.Fatal(err)
	}
	request.End()

	for _, s := range spans.Ended() {
		fmt.Print(s.Name())
		for _, kv := range s.Attributes() {
			switch kv.Key {
			case "db.operation.name", "lakesession.items":
				fmt.Printf(" %s=%s", kv.Key, kv.Value.String())
			}
		}
		fmt.Println()
	}
	// Output:
	// lakesession.CreateTables db.operation.name=CREATE TABLE
	// lakesession.AddItems db.operation.name=INSERT lakesession.items=1
	// lakesession.GetItems db.operation.name=SELECT lakesession.items=1
	// POST /invocations
}

// A write whose connection broke after its statement was sent may or may
// not have committed: read the session to find out before adding again.
func ExampleWithMaxRetryWait() {
	ctx := context.Background()
	db, err := sqlitedb.Open(":memory:") // PostgreSQL in practice: SQLite retries nothing
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	// Calls retry what certainly did not happen for up to 30 s.
	store, err := bunstore.New(db, bunstore.WithMaxRetryWait(30*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	if err := store.CreateTables(ctx); err != nil {
		log.Fatal(err)
	}
	sess := store.Session("user-789")
	turn := []json.RawMessage{json.RawMessage(`{"role":"user","content":"Hello","id":"msg_1"}`)}
	err = sess.AddItems(ctx, turn)
	if errors.Is(err, lakesession.ErrOutcomeUnknown) {
		// Look for the turn's last item before adding it again.
		latest, rerr := sess.GetItems(ctx, len(turn))
		if rerr == nil && len(latest) == len(turn) && string(latest[len(latest)-1]) == string(turn[len(turn)-1]) {
			err = nil // it was stored
		} else if rerr == nil {
			err = sess.AddItems(ctx, turn)
		}
	}
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("stored")
	// Output: stored
}
