// Package telemetry sets up the OpenTelemetry SDK for the agent server
// example, from the OpenTelemetry environment variables, so that one request
// shows as one trace: the HTTP server span, the store's lakesession.<Method>
// spans under it, the connector's lakesession.connect span under those when
// a new connection is opened, the token source's lakebase.token.mint span
// when a token is minted, and the agent's "chat <model>" and
// "execute_tool <tool>" spans. The library records through the global
// providers, so installing the SDK globally is all it takes.
//
// # Configuration
//
//	OTEL_TRACES_EXPORTER=console    spans to stdout, one JSON object a line, as each ends
//	OTEL_METRICS_EXPORTER=console   metrics to stdout, every OTEL_METRIC_EXPORT_INTERVAL (60 s) and at exit
//	OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4318   both to OTLP over HTTP (http/protobuf)
//	OTEL_TRACES_EXPORTER=console,otlp                    both exporters; "none" for neither
//	OTEL_SDK_DISABLED=true          nothing, whatever else is set
//
// With none of them set nothing is installed: the global providers stay
// no-ops and the library's instrumentation costs next to nothing. The OTLP
// exporters and the SDK read their other variables themselves:
// OTEL_EXPORTER_OTLP_HEADERS, OTEL_EXPORTER_OTLP_TIMEOUT, the per-signal
// OTEL_EXPORTER_OTLP_TRACES_* and _METRICS_*, OTEL_SERVICE_NAME (default
// agentserver), OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER.
//
// # Use
//
//	cfg, err := telemetry.FromEnv(os.Getenv)
//	if err != nil { ... } // an exporter or protocol this server does not have
//	shutdown, err := telemetry.Setup(ctx, cfg)
//	if err != nil { ... }
//	defer shutdown(context.Background()) // flushes the last spans and metrics
//	// ... open the store after Setup, so its startup spans are kept too ...
//	srv := &http.Server{Handler: telemetry.Handler(h)}
//
// In a test, install the SDK's in-memory exporter and a manual reader:
//
//	spans := tracetest.NewInMemoryExporter()
//	reader := sdkmetric.NewManualReader()
//	shutdown, err := telemetry.Setup(ctx, telemetry.Config{
//		SpanExporters: []sdktrace.SpanExporter{spans},
//		MetricReaders: []sdkmetric.Reader{reader},
//	})
package telemetry
