package lakebasecred

import (
	"errors"
	"strings"
)

// ErrClosed is returned by Token after Close.
var ErrClosed = errors.New("lakebasecred: source is closed")

// ConfigError reports a target or option that cannot work: missing or
// conflicting Target fields, an invalid option, an instance or endpoint that
// does not exist, is not available or has no hostname. Retrying does not
// help; each problem says what to set or fix. New returns it (never Token).
type ConfigError struct {
	// Problems says what is wrong, one problem per entry, each with what to
	// set or fix. New reports every problem it finds in the Target and the
	// options at once.
	Problems []string
	// Err is the underlying cause, such as the API's not-found error; nil
	// when the problem was found without calling the API.
	Err error
}

func (e *ConfigError) Error() string {
	msg := "lakebasecred: " + strings.Join(e.Problems, "; ")
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the underlying cause, if any.
func (e *ConfigError) Unwrap() error { return e.Err }

func configErr(cause error, problems ...string) *ConfigError {
	return &ConfigError{Problems: problems, Err: cause}
}

// RefreshError reports that no valid token could be had: the credential API
// failed (and no still-valid token was cached), or the caller's context
// ended before a token arrived. It is retryable: the Source keeps trying,
// with backoff, on later Token calls, and a later call may succeed. Err is
// the cause; errors.Is(err, context.DeadlineExceeded) and
// errors.Is(err, context.Canceled) report a caller's ended context, and
// errors.As reaches the API error (an *apierr.APIError of the SDK) when the
// API failed. The text never contains a token.
type RefreshError struct {
	// Target names what the token is for: `instance "name"` or
	// `endpoint "projects/p/branches/b/endpoints/e"`.
	Target string
	// Err is the cause: the API's error, the caller's context error, or
	// both (joined).
	Err error
}

func (e *RefreshError) Error() string {
	return "lakebasecred: no token for " + e.Target + ": " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *RefreshError) Unwrap() error { return e.Err }

// Temporary reports true: retrying can help. It lets callers that check for
// `interface{ Temporary() bool }` treat the error as transient.
func (e *RefreshError) Temporary() bool { return true }
