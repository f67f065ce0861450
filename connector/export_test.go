package connector

// WithoutTelemetry builds a Connector that starts no span and records no
// metric: Connect as it was before it had telemetry, for the benchmark that
// measures what telemetry costs.
func WithoutTelemetry() Option {
	return func(c *Config) { c.noTelemetry = true }
}
