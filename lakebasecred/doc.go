// Package lakebasecred finds a Databricks Lakebase database and hands out the
// short-lived OAuth tokens that are its passwords, minted through
// databricks-sdk-go and cached until shortly before they expire.
//
// A Source is made once per database, with New, and shared by the whole
// process. Its Host, User and Database are resolved in New; Token returns a
// valid token for each new login. The connector package turns a Source into
// a database/sql connector (connector.ForLakebase).
//
// # Provisioned instance
//
// By name, or by one of its hostnames (read_write_dns or read_only_dns). The
// host is the instance's read_write_dns, or its read_only_dns when it has no
// read-write one:
//
//	w, err := databricks.NewWorkspaceClient() // DATABRICKS_HOST, DATABRICKS_TOKEN, ...
//	if err != nil {
//		return err
//	}
//	src, err := lakebasecred.New(ctx, w, lakebasecred.Target{Instance: "my-instance"})
//	if err != nil {
//		return err // *lakebasecred.ConfigError says what to set
//	}
//	fmt.Println(src.Host(), src.User(), src.Database())
//	tok, err := src.Token(ctx) // the password of the next login
//
// Tokens come from w.Database.GenerateDatabaseCredential, each call with a
// new request id.
//
// # Autoscaling endpoint
//
// By resource name, or by project and branch, which picks the branch's
// READ_WRITE endpoint. The host is the endpoint's status.hosts.host:
//
//	src, err := lakebasecred.New(ctx, w, lakebasecred.Target{
//		Endpoint: "projects/my-project/branches/production/endpoints/primary",
//	})
//	// or
//	src, err = lakebasecred.New(ctx, w, lakebasecred.Target{
//		Project: "my-project",
//		Branch:  "production",
//	})
//
// Tokens come from w.Postgres.GenerateDatabaseCredential.
//
// # User and database
//
// The user is the current workspace user (w.CurrentUser.Me().UserName),
// unless WithUser names the role; the database is "databricks_postgres",
// unless WithDatabase names another:
//
//	src, err := lakebasecred.New(ctx, w, lakebasecred.Target{Instance: "my-instance"},
//		lakebasecred.WithUser("6a1b...-service-principal-application-id"),
//		lakebasecred.WithDatabase("agents"),
//		lakebasecred.WithLogger(logger),
//	)
//
// # Token cache
//
// A token is kept until a margin before the expiry the API returned: 5
// minutes, or half the token's lifetime when that is shorter (a one-hour
// token is replaced after 55 minutes). WithMaxTokenAge caps how long a token
// is kept, and is the lifetime assumed when the API returns no expiry (one
// hour by default).
//
//   - A fresh cached token is returned at once, without allocating, in tens
//     of nanoseconds.
//   - Inside the margin the cached token is still returned at once, and one
//     mint of the next token runs in the background.
//   - At most one mint runs at a time: 1000 concurrent calls on an empty
//     cache make one API call. The mint runs detached from the callers'
//     contexts, bounded by its own timeout (WithMintTimeout), so a caller
//     whose context ends gets its context error while the others still get
//     the token.
//   - A failed background refresh is reported with slog (WithLogger) and
//     OpenTelemetry (see Telemetry), and retried with backoff (1s doubling to 30s, with jitter) while the
//     still-valid token keeps being served. A token stops being served 30
//     seconds (or a tenth of its lifetime) before it expires.
//   - With no valid token and the API failing, Token returns a
//     *RefreshError within the caller's deadline; it never hangs.
//   - Invalidate drops the cached token (the connector calls it when the
//     database rejects a password); InvalidateToken drops it only if it is
//     the given token.
//
// # Errors
//
// New returns a *ConfigError for a target or option that cannot work: its
// Problems say what to set; retrying does not help. Token returns a
// *RefreshError, which is retryable: its cause (Unwrap) is the API's error or
// the caller's context error. After Close, Token returns ErrClosed.
//
// No error text, log record, String, GoString or LogValue of this package
// ever contains a token.
//
// # Telemetry
//
// A Source records each call of the credential API with OpenTelemetry: to
// the global providers (otel.GetTracerProvider, otel.GetMeterProvider),
// which record nothing until the application installs an SDK, or to those
// passed as options. Token on a warm cache records nothing, so it costs the
// same with or without an SDK. The instrumentation scope is
// "github.com/lakesession/lakesession/lakebasecred".
//
//	src, err := lakebasecred.New(ctx, w, lakebasecred.Target{Instance: "my-instance"},
//		lakebasecred.WithTracerProvider(tp), // *sdktrace.TracerProvider, ...
//		lakebasecred.WithMeterProvider(mp),  // *sdkmetric.MeterProvider, ...
//	)
//
// The span lakebase.token.mint, of kind client, covers one call of the
// credential API, the SDK's own retries of 429 and 503 answers included.
// It is the root of a trace of its own, never the child of a caller's span:
// a mint runs detached from the callers, serves all of them, may outlive
// the one that started it, and, as a background refresh, is not waited for
// at all. It links to the span in the context of the Token call that
// started it, if any (callers that join a running mint add no link: a cold
// start with a thousand callers makes one span, with one link); a
// background retry links to the failed attempt before it. Its attributes:
//
//   - lakebase.target.kind: "instance" (provisioned) or "endpoint"
//     (autoscaling).
//   - lakebase.target.name: the instance name, or the endpoint's resource
//     name.
//   - lakebase.token.mint.reason: "no_token" (no token could be served:
//     callers wait for this mint), "refresh" (the cached token entered its
//     refresh margin: callers keep getting it meanwhile) or "retry" (a
//     background retry after a failed refresh).
//   - lakebase.token.mint.outcome: "ok" (minted and cached); "config" (the
//     API refused with 400, 401, 403 or 404: the credentials, the
//     permissions or the target need fixing, and retries fail the same way);
//     "error" (any other failure: 429, 5xx, the network, an answer without a
//     token; retried with backoff); "timeout" (no answer within
//     WithMintTimeout); "canceled" (Close ended the mint).
//   - error.type, when the mint failed: the API's error code
//     ("PERMISSION_DENIED", "TEMPORARILY_UNAVAILABLE", ...; the HTTP status
//     when there is none), "timeout", "empty_token", or "_OTHER" (such as a
//     network error). The span's status is then Error, described by the
//     error's text.
//
// The metrics:
//
//   - lakebase.token.mint.duration (histogram, s): the duration of each
//     call of the credential API, with lakebase.target.kind,
//     lakebase.target.name, lakebase.token.mint.outcome and, on failure,
//     error.type. Buckets from 0.01 s to 60 s.
//   - lakebase.token.mints (counter, {mint}): the calls of the credential
//     API, with the same attributes.
//   - lakebase.token.expires_in (gauge, s): the seconds until the cached
//     token expires (at the expiry the API returned, capped by
//     WithMaxTokenAge), with lakebase.target.kind and lakebase.target.name.
//     There is no observation while no token is cached (before the first
//     Token call, after Invalidate or Close) nor once the cached token has
//     expired. The token stops being served 30 seconds (or a tenth of its
//     lifetime) before the value reaches 0, and is refreshed from the
//     refresh margin on (RefreshMargin). Refreshes are started by Token
//     calls: in a process that stays idle the value falls to 0 and
//     disappears, which is harmless; a low value while mints fail is what
//     to alert on.
//
// The gauge's callback is registered at the Source's first token and
// unregistered by Close. It holds the Source weakly: a Source dropped
// without Close is still garbage collected, and its callback is then
// unregistered.
//
// No span, event, link, attribute or metric carries a token.
//
// # Goroutines
//
// A Source runs a goroutine only while a mint is in progress (it ends when
// the API answers or the mint timeout passes) and, after a failed
// background refresh, while it waits to retry (never past the moment the
// cached token stops being served). Close ends it at once and waits for it;
// a Source that is dropped without Close leaks nothing.
//
// # Testing
//
// Package lakebasetest is a fake Databricks control plane (httptest) whose
// WorkspaceClient can be passed to New, for tests that run offline:
//
//	fake := lakebasetest.NewServer(t)
//	fake.AddInstance(lakebasetest.Instance{Name: "my-instance", ReadWriteDNS: "127.0.0.1"})
//	src, err := lakebasecred.New(ctx, fake.WorkspaceClient(), lakebasecred.Target{Instance: "my-instance"})
package lakebasecred
