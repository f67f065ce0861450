package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdoutmetric"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// The exporters Config names.
const (
	Console = "console" // spans and metrics as JSON lines on Config.Stdout
	OTLP    = "otlp"    // OTLP over HTTP (http/protobuf)
)

// DefaultServiceName is the service.name of the resource when
// OTEL_SERVICE_NAME does not set one.
const DefaultServiceName = "agentserver"

// Config says where spans and metrics go.
type Config struct {
	// Traces and Metrics name the exporters of spans and of metrics:
	// Console, OTLP, both, or none (empty).
	Traces  []string
	Metrics []string

	// Stdout is where the console exporters write; nil means os.Stdout.
	Stdout io.Writer

	// SpanExporters and MetricReaders are installed beside those named
	// above, such as the SDK's in-memory exporter and a manual reader in a
	// test. Spans reach SpanExporters as they end, one at a time.
	SpanExporters []sdktrace.SpanExporter
	MetricReaders []sdkmetric.Reader
}

// Enabled reports whether c installs anything.
func (c Config) Enabled() bool {
	return len(c.Traces)+len(c.Metrics)+len(c.SpanExporters)+len(c.MetricReaders) > 0
}

// FromEnv returns the Config that the OpenTelemetry environment variables
// describe. getenv is usually os.Getenv.
//
//   - OTEL_TRACES_EXPORTER and OTEL_METRICS_EXPORTER: a comma-separated
//     list of console, otlp and none. When one is unset, it is otlp if
//     OTEL_EXPORTER_OTLP_ENDPOINT (or the signal's own
//     OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or
//     OTEL_EXPORTER_OTLP_METRICS_ENDPOINT) is set, and none otherwise: by
//     default nothing is recorded.
//   - OTEL_SDK_DISABLED=true turns both off.
//   - OTEL_EXPORTER_OTLP_PROTOCOL (and the signal's own
//     OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, OTEL_EXPORTER_OTLP_METRICS_PROTOCOL)
//     may only be http/protobuf, the protocol of the exporters here.
//
// The OTLP exporters read the rest of their settings from the environment
// themselves (OTEL_EXPORTER_OTLP_ENDPOINT, _HEADERS, _TIMEOUT, ...), and so
// does the SDK (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES,
// OTEL_TRACES_SAMPLER, OTEL_METRIC_EXPORT_INTERVAL, ...).
func FromEnv(getenv func(string) string) (Config, error) {
	var c Config
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return c, nil
	}
	var errs []error
	for _, sig := range []struct {
		name string // TRACES or METRICS
		dst  *[]string
	}{{"TRACES", &c.Traces}, {"METRICS", &c.Metrics}} {
		names, err := exporters(getenv, sig.name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		*sig.dst = names
		if has(names, OTLP) {
			for _, v := range []string{"OTEL_EXPORTER_OTLP_" + sig.name + "_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
				if p := strings.TrimSpace(getenv(v)); p != "" {
					if p != "http/protobuf" {
						errs = append(errs, fmt.Errorf("%s=%q: this server exports OTLP over HTTP only; set it to http/protobuf (port 4318) or unset it", v, p))
					}
					break
				}
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, err
	}
	return c, nil
}

// exporters reads OTEL_<signal>_EXPORTER.
func exporters(getenv func(string) string, signal string) ([]string, error) {
	v := "OTEL_" + signal + "_EXPORTER"
	list := strings.TrimSpace(getenv(v))
	if list == "" {
		if getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_"+signal+"_ENDPOINT") != "" {
			return []string{OTLP}, nil
		}
		return nil, nil
	}
	var names []string
	for _, n := range strings.Split(list, ",") {
		switch n = strings.ToLower(strings.TrimSpace(n)); n {
		case "none":
			return nil, nil
		case Console, OTLP:
			if !has(names, n) {
				names = append(names, n)
			}
		default:
			return nil, fmt.Errorf("%s=%q: %q is not an exporter of this server; use console, otlp or none", v, list, n)
		}
	}
	return names, nil
}

func has(names []string, n string) bool {
	for _, x := range names {
		if x == n {
			return true
		}
	}
	return false
}

// Setup installs the OpenTelemetry SDK that c describes as the global
// tracer and meter providers (otel.SetTracerProvider, otel.SetMeterProvider),
// with the W3C trace-context and baggage propagators, so that the library's
// spans and metrics, which use the global providers by default, are
// recorded: the store's lakesession.<Method> spans, the connector's
// lakesession.connect, the token source's lakebase.token.mint, and the
// server's own. With nothing configured it installs nothing and the global
// providers stay no-ops.
//
// shutdown flushes what is buffered and stops the exporters; call it once,
// before the program exits, with a context that bounds how long it may
// take.
func Setup(ctx context.Context, c Config) (shutdown func(context.Context) error, err error) {
	if !c.Enabled() {
		return func(context.Context) error { return nil }, nil
	}
	stdout := c.Stdout
	if stdout == nil {
		stdout = os.Stdout
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", DefaultServiceName)),
		resource.WithFromEnv(), // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win
		resource.WithTelemetrySDK(),
	)
	if err != nil {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}

	topts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	for _, name := range c.Traces {
		switch name {
		case Console:
			exp, err := stdouttrace.New(stdouttrace.WithWriter(stdout))
			if err != nil {
				return nil, fmt.Errorf("telemetry: console span exporter: %w", err)
			}
			topts = append(topts, sdktrace.WithSyncer(exp)) // each span as it ends
		case OTLP:
			exp, err := otlptracehttp.New(ctx)
			if err != nil {
				return nil, fmt.Errorf("telemetry: OTLP span exporter (OTEL_EXPORTER_OTLP_*): %w", err)
			}
			topts = append(topts, sdktrace.WithBatcher(exp))
		}
	}
	for _, exp := range c.SpanExporters {
		topts = append(topts, sdktrace.WithSyncer(exp))
	}
	mopts := []sdkmetric.Option{sdkmetric.WithResource(res)}
	for _, name := range c.Metrics {
		var exp sdkmetric.Exporter
		switch name {
		case Console:
			exp, err = stdoutmetric.New(stdoutmetric.WithWriter(stdout))
		case OTLP:
			exp, err = otlpmetrichttp.New(ctx)
		}
		if err != nil {
			return nil, fmt.Errorf("telemetry: %s metric exporter: %w", name, err)
		}
		// Every OTEL_METRIC_EXPORT_INTERVAL (60 s by default), and at
		// shutdown.
		mopts = append(mopts, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp)))
	}
	for _, r := range c.MetricReaders {
		mopts = append(mopts, sdkmetric.WithReader(r))
	}

	tp := sdktrace.NewTracerProvider(topts...)
	mp := sdkmetric.NewMeterProvider(mopts...)
	otel.SetTracerProvider(tp)
	otel.SetMeterProvider(mp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	return func(ctx context.Context) error {
		// Spans first: the span of a request may end after its metrics.
		return errors.Join(tp.Shutdown(ctx), mp.Shutdown(ctx))
	}, nil
}

// routes are the paths the agent server serves, named in span names as
// they are; any other path is left out of the name, so that a scan of
// random paths does not make a span name per path.
var routes = map[string]bool{"/invocations": true, "/healthz": true}

// Handler wraps h so that each request makes an HTTP server span, named
// "POST /invocations" and so on, with the attributes of the OpenTelemetry
// HTTP conventions, and the http.server.* metrics; spans a request's
// handling starts (the store's, the model's) are its children. A traceparent
// header makes the span a child of the caller's. Requests for /healthz are
// not traced: health checks would drown the rest.
func Handler(h http.Handler) http.Handler {
	return otelhttp.NewHandler(h, "agentserver",
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
			if routes[r.URL.Path] {
				return r.Method + " " + r.URL.Path
			}
			return r.Method
		}),
		otelhttp.WithFilter(func(r *http.Request) bool { return r.URL.Path != "/healthz" }),
	)
}

// Transport wraps base (nil means http.DefaultTransport) so that each
// request makes an HTTP client span, child of the span in its context: the
// calls of the model's endpoint show under the turn that made them.
func Transport(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return otelhttp.NewTransport(base)
}
