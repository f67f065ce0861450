package lakebasecred_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"time"

	"github.com/databricks/databricks-sdk-go"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/lakesession/lakesession/lakebasecred"
)

// A provisioned instance by name, with the workspace authentication of the
// environment (DATABRICKS_HOST, DATABRICKS_TOKEN, a profile, ...).
func Example() {
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

	tok, err := src.Token(ctx) // cached; minted again only near expiry
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("host=%s user=%s dbname=%s sslmode=require password=<%d bytes>\n",
		src.Host(), src.User(), src.Database(), len(tok))
}

// An autoscaling endpoint, named by its project and branch (the branch's
// READ_WRITE endpoint is used), as a service principal, on another
// database.
func Example_autoscaling() {
	ctx := context.Background()
	w, err := databricks.NewWorkspaceClient()
	if err != nil {
		log.Fatal(err)
	}
	src, err := lakebasecred.New(ctx, w,
		lakebasecred.Target{Project: "my-project", Branch: "production"},
		lakebasecred.WithUser("00000000-0000-0000-0000-000000000000"), // the principal's application id
		lakebasecred.WithDatabase("agents"),
		lakebasecred.WithMaxTokenAge(30*time.Minute),
		lakebasecred.WithLogger(slog.Default()),
	)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(src) // target, host, user and database; never a token
}

// Token errors are retryable *RefreshError values; after the database
// rejects a token, Invalidate makes the next Token call mint a new one.
func ExampleSource_Token() {
	ctx := context.Background()
	w, err := databricks.NewWorkspaceClient()
	if err != nil {
		log.Fatal(err)
	}
	src, err := lakebasecred.New(ctx, w, lakebasecred.Target{
		Endpoint: "projects/my-project/branches/production/endpoints/primary",
	})
	if err != nil {
		log.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	tok, err := src.Token(ctx)
	var re *lakebasecred.RefreshError
	if errors.As(err, &re) {
		log.Printf("no token yet, try again later: %v", err)
		return
	}
	_ = tok // the password of the next login
	// ... when the login fails with SQLSTATE 28P01:
	src.Invalidate()
}

// Each call of the credential API is a lakebase.token.mint span and is
// counted and timed; the gauge lakebase.token.expires_in tells how long the
// cached token has left. Without these options they go to the global
// providers (otel.SetTracerProvider, otel.SetMeterProvider).
func ExampleWithTracerProvider() {
	ctx := context.Background()
	tp := sdktrace.NewTracerProvider() // with sdktrace.WithBatcher(exporter)
	defer tp.Shutdown(ctx)
	mp := sdkmetric.NewMeterProvider() // with sdkmetric.WithReader(reader)
	defer mp.Shutdown(ctx)

	w, err := databricks.NewWorkspaceClient()
	if err != nil {
		log.Fatal(err)
	}
	src, err := lakebasecred.New(ctx, w, lakebasecred.Target{Instance: "my-instance"},
		lakebasecred.WithTracerProvider(tp),
		lakebasecred.WithMeterProvider(mp),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer src.Close() // also ends the expires_in callback

	// The first call mints: one span, whatever the number of callers. The
	// span is a new root that links to the span in ctx, if any.
	if _, err := src.Token(ctx); err != nil {
		log.Printf("no token yet: %v", err)
	}
}

// Configuration problems are found before any API call and reported
// together, each saying what to set.
func ExampleConfigError() {
	_, err := lakebasecred.New(context.Background(), nil,
		lakebasecred.Target{Project: "my-project"},
		lakebasecred.WithDatabase(""))
	var ce *lakebasecred.ConfigError
	if errors.As(err, &ce) {
		for _, p := range ce.Problems {
			fmt.Println("-", p)
		}
	}
	// Output:
	// - the workspace client is nil: pass a *databricks.WorkspaceClient (databricks.NewWorkspaceClient())
	// - Target.Project is set without Target.Branch: set Target.Branch too (or Target.Endpoint instead)
	// - WithDatabase was given an empty name: pass a database name, or leave the option out for databricks_postgres
}
