package lakesession

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Session is the conversation history of one session id.
//
// Items are Responses-API input items: JSON objects, stored as compact JSON text.
// Implementations must keep the behaviour documented on each method; the
// sessiontest package checks it.
//
// Every method returns ErrInvalidSessionID (checked with errors.Is) when the
// session id is not valid (see ValidateSessionID), before touching storage.
// Storage failures are returned wrapped with the operation and the session id,
// never with a password or token.
type Session interface {
	// SessionID returns the id this session was opened with.
	SessionID() string

	// GetItems returns the session's items, oldest first. limit <= 0 returns
	// all of them; limit > 0 returns the latest limit items, still oldest
	// first. An unknown session has no items: GetItems returns an empty
	// slice and no error. Items are returned in the order in which AddItems
	// batches committed and, within a batch, in the caller's order. A stored
	// item that is not valid JSON is skipped (and reported by the
	// implementation), and does not count toward limit.
	GetItems(ctx context.Context, limit int) ([]json.RawMessage, error)

	// AddItems appends items as one atomic batch, in the given order: either
	// every item is stored or none is, also when ctx is cancelled midway.
	// Concurrent AddItems calls on one session never interleave their
	// batches. An empty slice is a no-op. An item that is not a JSON object
	// fails the whole batch with ErrInvalidItem and nothing is written.
	AddItems(ctx context.Context, items []json.RawMessage) error

	// PopItem removes and returns the newest item; it returns (nil, nil)
	// when the session is empty. It is atomic: concurrent PopItem calls
	// never return the same item, and no item is lost.
	PopItem(ctx context.Context) (json.RawMessage, error)

	// ClearSession removes every item of the session and the session
	// itself. Clearing an unknown session is not an error.
	ClearSession(ctx context.Context) error
}

var (
	// ErrInvalidSessionID is returned for a session id that is empty, longer
	// than MaxSessionIDLen bytes, not valid UTF-8, or contains a NUL byte.
	ErrInvalidSessionID = errors.New("lakesession: invalid session id")

	// ErrInvalidItem is returned by AddItems when an item is not a JSON
	// object. Nothing of the batch is written.
	ErrInvalidItem = errors.New("lakesession: invalid item")

	// ErrOutcomeUnknown is returned by a write (AddItems, PopItem) whose
	// statement was sent and whose connection broke before its result came
	// back: the batch may or may not be stored, the item may or may not be
	// removed. The call was not retried, because running it again could
	// store the batch twice. Read the session to reconcile.
	ErrOutcomeUnknown = errors.New("lakesession: the statement was sent and the connection broke before its result came back: the write may or may not have happened")
)

// MaxSessionIDLen is the longest session id accepted, in bytes.
const MaxSessionIDLen = 255

// ValidateSessionID reports whether id can be used as a session id. The
// error wraps ErrInvalidSessionID and says what is wrong with id.
func ValidateSessionID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("%w: it is empty; use a non-empty string such as a UUID", ErrInvalidSessionID)
	case len(id) > MaxSessionIDLen:
		return fmt.Errorf("%w: it is %d bytes long; use at most %d bytes", ErrInvalidSessionID, len(id), MaxSessionIDLen)
	case !utf8.ValidString(id):
		return fmt.Errorf("%w: it is not valid UTF-8", ErrInvalidSessionID)
	case strings.IndexByte(id, 0) >= 0:
		return fmt.Errorf("%w: it contains a NUL byte", ErrInvalidSessionID)
	}
	return nil
}

// CompactItem checks that item is one JSON object and returns it in compact
// form, the form in which items are stored. The error wraps ErrInvalidItem.
// Implementations of Session call it on every item before writing any.
func CompactItem(item json.RawMessage) ([]byte, error) {
	// Skip leading white space to find the first token cheaply.
	i := 0
	for i < len(item) && (item[i] == ' ' || item[i] == '\t' || item[i] == '\n' || item[i] == '\r') {
		i++
	}
	if i == len(item) {
		return nil, fmt.Errorf("%w: it is empty; each item must be a JSON object such as {\"role\":\"user\",\"content\":\"hi\"}", ErrInvalidItem)
	}
	if item[i] != '{' {
		return nil, fmt.Errorf("%w: it is not a JSON object; each item must be a JSON object such as {\"role\":\"user\",\"content\":\"hi\"}", ErrInvalidItem)
	}
	var buf bytes.Buffer
	buf.Grow(len(item))
	if err := json.Compact(&buf, item); err != nil {
		// encoding/json's message quotes the offending character of the
		// item; say where it is instead, so no content reaches the error.
		// (json.Compact's offsets are not always the error's position;
		// a decoder's are, and this path is rare.)
		var syn *json.SyntaxError
		if derr := json.Unmarshal(item, new(json.RawMessage)); errors.As(derr, &syn) {
			return nil, fmt.Errorf("%w: it is not valid JSON (syntax error at byte %d of %d)", ErrInvalidItem, syn.Offset, len(item))
		}
		return nil, fmt.Errorf("%w: it is not valid JSON", ErrInvalidItem)
	}
	// json.Compact lets invalid UTF-8 inside strings through; no database
	// text column takes it, so reject it here, before anything is written.
	if !utf8.Valid(buf.Bytes()) {
		return nil, fmt.Errorf("%w: it contains invalid UTF-8; encode text as UTF-8", ErrInvalidItem)
	}
	return buf.Bytes(), nil
}
