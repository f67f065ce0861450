package bunstore

// WithoutTelemetry builds a Store that starts no span and records no
// metric: the calls as they were before the store had telemetry, for the
// benchmark that measures what telemetry costs.
func WithoutTelemetry() Option {
	return func(c *config) { c.noTelemetry = true }
}
