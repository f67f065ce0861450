package lakebasecred

import (
	"fmt"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// Defaults of the options.
const (
	// DefaultDatabase is the database name unless WithDatabase is given.
	DefaultDatabase = "databricks_postgres"
	// DefaultMaxTokenAge is the cap on how long a token is cached, and its
	// assumed lifetime when the API returns no expiry: one hour, the
	// lifetime of a Lakebase token.
	DefaultMaxTokenAge = time.Hour
	// DefaultMintTimeout bounds one call of the credential API, SDK retries
	// included.
	DefaultMintTimeout = 30 * time.Second
	// RefreshMargin is how long before a token's expiry a new one is
	// minted: 5 minutes, or half the token's lifetime when that is shorter.
	RefreshMargin = 5 * time.Minute
)

// Backoff between failed mints.
const (
	minBackoff = time.Second
	maxBackoff = 30 * time.Second
)

// Option configures New.
type Option func(*options)

type options struct {
	user        string
	userSet     bool
	database    string
	maxAge      time.Duration
	mintTimeout time.Duration
	logger      *slog.Logger
	tracers     trace.TracerProvider
	meters      metric.MeterProvider
	now         func() time.Time
	after       func(time.Duration) <-chan time.Time
	problems    []string
}

func defaultOptions() options {
	return options{
		database:    DefaultDatabase,
		maxAge:      DefaultMaxTokenAge,
		mintTimeout: DefaultMintTimeout,
		logger:      slog.Default(),
		tracers:     otel.GetTracerProvider(),
		meters:      otel.GetMeterProvider(),
		now:         time.Now,
		after:       time.After,
	}
}

// WithUser sets the PostgreSQL role to log in as, instead of the current
// workspace user (w.CurrentUser.Me), which New then does not look up. Use it
// for a service principal's application id or a role of your own.
func WithUser(name string) Option {
	return func(o *options) {
		o.userSet = true
		o.user = name
		if name == "" {
			o.problems = append(o.problems, "WithUser was given an empty name: pass a role name, or leave the option out to use the current workspace user")
		}
	}
}

// WithDatabase sets the database name; the default is DefaultDatabase
// ("databricks_postgres").
func WithDatabase(name string) Option {
	return func(o *options) {
		o.database = name
		if name == "" {
			o.problems = append(o.problems, "WithDatabase was given an empty name: pass a database name, or leave the option out for "+DefaultDatabase)
		}
	}
}

// WithMaxTokenAge caps how long a token is cached, counted from when it was
// asked for, whatever expiry the API returns; it is also the lifetime
// assumed when the API returns no expiry. The default is DefaultMaxTokenAge
// (one hour). d must be positive.
func WithMaxTokenAge(d time.Duration) Option {
	return func(o *options) {
		o.maxAge = d
		if d <= 0 {
			o.problems = append(o.problems, fmt.Sprintf("WithMaxTokenAge(%v) is not positive: pass a duration such as time.Hour", d))
		}
	}
}

// WithMintTimeout bounds each call of the credential API, including the
// SDK's own retries of 429 and 503 answers (which otherwise go on for
// minutes); the default is DefaultMintTimeout. A caller of Token never
// waits longer than its own context allows, whatever this is. d must be
// positive.
func WithMintTimeout(d time.Duration) Option {
	return func(o *options) {
		o.mintTimeout = d
		if d <= 0 {
			o.problems = append(o.problems, fmt.Sprintf("WithMintTimeout(%v) is not positive: pass a duration such as 30*time.Second", d))
		}
	}
}

// WithLogger sets where refresh failures and recoveries are reported; the
// default is slog.Default(). Log records carry the target, never a token.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		o.logger = l
		if l == nil {
			o.problems = append(o.problems, "WithLogger was given a nil logger: pass a *slog.Logger, or leave the option out for slog.Default()")
		}
	}
}

// WithTracerProvider sets where the span of each call of the credential
// API (lakebase.token.mint) goes; the default is otel.GetTracerProvider(),
// which records nothing until the application installs an OpenTelemetry
// SDK. Spans carry the target and the outcome, never a token. See the
// package doc, # Telemetry.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(o *options) {
		o.tracers = tp
		if tp == nil {
			o.problems = append(o.problems, "WithTracerProvider was given a nil provider: pass a trace.TracerProvider, or leave the option out for otel.GetTracerProvider()")
		}
	}
}

// WithMeterProvider sets where the token metrics (lakebase.token.mints,
// lakebase.token.mint.duration, lakebase.token.expires_in) go; the default
// is otel.GetMeterProvider(), which records nothing until the application
// installs an OpenTelemetry SDK. See the package doc, # Telemetry.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(o *options) {
		o.meters = mp
		if mp == nil {
			o.problems = append(o.problems, "WithMeterProvider was given a nil provider: pass a metric.MeterProvider, or leave the option out for otel.GetMeterProvider()")
		}
	}
}

// telemetry makes the tracer and the instruments of a new Source.
func (o *options) telemetry() *telemetry { return newTelemetry(o.tracers, o.meters) }

// withClock makes the Source read the time from now and wait for its
// backoff timers with after (tests).
func withClock(now func() time.Time, after func(time.Duration) <-chan time.Time) Option {
	return func(o *options) { o.now, o.after = now, after }
}
