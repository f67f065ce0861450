package sessiontest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lakesession/lakesession"
)

// memStore is a small in-memory implementation of lakesession.Session, the
// reference the suite is checked against. With a bug set it misbehaves in
// one way, to show that the suite catches it.
type memStore struct {
	bug bug

	mu        sync.Mutex
	sessions  map[string][][]byte // compact items, oldest first
	handles   int                 // handles opened, for bugSeparateHandles
	handlesOf map[string]int      // handles opened on each id, for the race bugs
	inflight  int                 // callers between two steps, for the race bugs
}

// bug names one way in which memStore breaks the Session contract.
type bug string

const (
	bugNone             bug = "none"
	bugNewestFirst      bug = "newest-first"        // GetItems returns newest first
	bugLimitOldest      bug = "limit-oldest"        // limit N returns the oldest N
	bugNegativeLimit    bug = "negative-limit"      // a negative limit returns nothing
	bugLimitOverCount   bug = "limit-over-count"    // a limit over the count is an error
	bugPartialInvalid   bug = "partial-invalid"     // writes the items before an invalid one
	bugAcceptsNonObject bug = "accepts-non-object"  // any valid JSON is an item
	bugEmptyAddError    bug = "empty-add-error"     // AddItems(nil) is an error
	bugPopNoRemove      bug = "pop-no-remove"       // PopItem does not remove the item
	bugPopOldest        bug = "pop-oldest"          // PopItem takes the oldest item
	bugPopEmptyError    bug = "pop-empty-error"     // PopItem on an empty session is an error
	bugPopRace          bug = "pop-race"            // PopItem reads, then deletes: two callers get one item
	bugIgnoresBadID     bug = "ignores-bad-id"      // no session id validation
	bugCutsID           bug = "cuts-id"             // cuts long ids and ids with NUL instead of rejecting them
	bugNoCompact        bug = "no-compact"          // stores items as given
	bugReencode         bug = "reencode"            // stores items decoded and encoded again
	bugDropsNULEscape   bug = "drops-nul-escape"    // drops \u0000 escapes, as a jsonb column would refuse them
	bugItemSizeLimit    bug = "item-size-limit"     // refuses items over 64 KiB
	bugBatchSizeLimit   bug = "batch-size-limit"    // refuses batches over 1,000 items
	bugClearAll         bug = "clear-all"           // ClearSession clears every session
	bugClearLike        bug = "clear-like"          // ClearSession matches the id as a LIKE pattern
	bugCaseInsensitive  bug = "case-insensitive"    // ids are compared without case
	bugSeparateHandles  bug = "separate-handles"    // each handle has its own items
	bugInterleave       bug = "interleave"          // AddItems stores one item at a time
	bugFirstWriteRace   bug = "first-write-race"    // concurrent first writers fail with a duplicate
	bugIgnoresContext   bug = "ignores-context"     // never looks at the context
	bugWrongCtxError    bug = "wrong-ctx-error"     // reports every done context as Canceled
	bugPartialOnCancel  bug = "partial-on-cancel"   // AddItems checks the context between items
	bugClearOnCancel    bug = "clear-on-cancel"     // ClearSession checks the context between items
	bugUnknownGetError  bug = "unknown-get-error"   // GetItems on an unknown session is an error
	bugClearUnknownErr  bug = "clear-unknown-error" // ClearSession on an unknown session is an error
	bugAliasInput       bug = "alias-input"         // keeps the caller's bytes
	bugAliasOutput      bug = "alias-output"        // hands out the stored bytes
	bugBareErrors       bug = "bare-errors"         // returns the bare sentinels, without saying what is wrong
)

var _ lakesession.Session = (*memSession)(nil)

func newMemStore(b bug) *memStore {
	return &memStore{bug: b, sessions: make(map[string][][]byte), handlesOf: make(map[string]int)}
}

// open is the function sessiontest.Run is given.
func (m *memStore) open(_ *testing.T, id string) lakesession.Session { return m.Session(id) }

// Session returns a handle on the session id; it does not validate id.
func (m *memStore) Session(id string) *memSession {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.handles++
	m.handlesOf[id]++
	return &memSession{m: m, id: id, handle: m.handles}
}

// count returns the number of sessions stored.
func (m *memStore) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.sessions)
}

type memSession struct {
	m      *memStore
	id     string
	handle int
}

func (s *memSession) SessionID() string { return s.id }

// key returns the map key of the session, checking the id and the context.
func (s *memSession) key(ctx context.Context, op string) (string, error) {
	id := s.id
	switch s.m.bug {
	case bugCutsID:
		if i := strings.IndexByte(id, 0); i >= 0 {
			id = id[:i]
		}
		if len(id) > lakesession.MaxSessionIDLen {
			id = id[:lakesession.MaxSessionIDLen]
		}
	case bugCaseInsensitive:
		id = strings.ToLower(id)
	case bugSeparateHandles:
		id = fmt.Sprintf("%s#%d", id, s.handle)
	}
	if s.m.bug != bugIgnoresBadID {
		if err := lakesession.ValidateSessionID(id); err != nil {
			if s.m.bug == bugBareErrors {
				return "", lakesession.ErrInvalidSessionID
			}
			return "", fmt.Errorf("%s session %q: %w", op, s.id, err)
		}
	}
	if err := s.ctxErr(ctx, op); err != nil {
		return "", err
	}
	return id, nil
}

func (s *memSession) ctxErr(ctx context.Context, op string) error {
	if s.m.bug == bugIgnoresContext {
		return nil
	}
	err := ctx.Err()
	if err != nil && s.m.bug == bugWrongCtxError {
		err = context.Canceled
	}
	if err != nil {
		return fmt.Errorf("%s session %q: %w", op, s.id, err)
	}
	return nil
}

func (s *memSession) GetItems(ctx context.Context, limit int) ([]json.RawMessage, error) {
	key, err := s.key(ctx, "get items of")
	if err != nil {
		return nil, err
	}
	m := s.m
	m.mu.Lock()
	defer m.mu.Unlock()
	stored, ok := m.sessions[key]
	if !ok && m.bug == bugUnknownGetError {
		return nil, fmt.Errorf("get items of session %q: no such session", s.id)
	}
	first := 0
	switch {
	case limit > len(stored) && m.bug == bugLimitOverCount:
		return nil, fmt.Errorf("get items of session %q: limit %d is over the item count", s.id, limit)
	case limit < 0 && m.bug == bugNegativeLimit:
		return []json.RawMessage{}, nil
	case limit > 0 && limit < len(stored):
		first = len(stored) - limit
	}
	out := make([]json.RawMessage, 0, len(stored)-first)
	for _, it := range stored[first:] {
		if m.bug == bugAliasOutput {
			out = append(out, it)
		} else {
			out = append(out, slices.Clone(it))
		}
	}
	if m.bug == bugLimitOldest && first > 0 {
		out = out[:0]
		for _, it := range stored[:limit] {
			out = append(out, slices.Clone(it))
		}
	}
	if m.bug == bugNewestFirst {
		slices.Reverse(out)
	}
	return out, nil
}

func (s *memSession) AddItems(ctx context.Context, items []json.RawMessage) error {
	key, err := s.key(ctx, "add items to")
	if err != nil {
		return err
	}
	m := s.m
	if len(items) == 0 {
		if m.bug == bugEmptyAddError {
			return fmt.Errorf("add items to session %q: no items", s.id)
		}
		return nil
	}
	if m.bug == bugBatchSizeLimit && len(items) > 1000 {
		return fmt.Errorf("add items to session %q: too many items", s.id)
	}
	batch := make([][]byte, 0, len(items))
	for i, it := range items {
		c, err := s.prepare(it)
		if err != nil && m.bug == bugBareErrors {
			return lakesession.ErrInvalidItem
		}
		if err != nil {
			if m.bug == bugPartialInvalid {
				m.mu.Lock()
				m.sessions[key] = append(m.sessions[key], batch...)
				m.mu.Unlock()
			}
			return fmt.Errorf("add items to session %q: item %d: %w", s.id, i, err)
		}
		batch = append(batch, c)
	}

	switch m.bug {
	case bugFirstWriteRace:
		// Look for the session, then create it in a second step, as a
		// SELECT followed by an INSERT does.
		m.mu.Lock()
		_, exists := m.sessions[key]
		m.mu.Unlock()
		if !exists {
			m.waitForOthers(s.id)
			m.mu.Lock()
			_, exists = m.sessions[key]
			if exists {
				m.mu.Unlock()
				return fmt.Errorf("add items to session %q: duplicate key value violates unique constraint", s.id)
			}
			m.sessions[key] = [][]byte{}
			m.mu.Unlock()
		}
	case bugInterleave, bugPartialOnCancel:
		for i, c := range batch {
			if m.bug == bugPartialOnCancel {
				if err := ctx.Err(); err != nil {
					return fmt.Errorf("add items to session %q: %w", s.id, err)
				}
			}
			m.mu.Lock()
			m.sessions[key] = append(m.sessions[key], c)
			m.mu.Unlock()
			if m.bug == bugInterleave && i == 0 {
				m.waitForOthers(s.id)
			}
		}
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sessions[key] = append(m.sessions[key], batch...)
	return nil
}

// prepare returns the form in which item is stored.
func (s *memSession) prepare(item json.RawMessage) ([]byte, error) {
	switch s.m.bug {
	case bugAcceptsNonObject:
		if !json.Valid(item) {
			return nil, fmt.Errorf("%w: not valid JSON", lakesession.ErrInvalidItem)
		}
		return slices.Clone(item), nil
	case bugNoCompact:
		if _, err := lakesession.CompactItem(item); err != nil {
			return nil, err
		}
		return slices.Clone(item), nil
	case bugAliasInput:
		if _, err := lakesession.CompactItem(item); err != nil {
			return nil, err
		}
		return item, nil // the suite passes compact items, so this keeps the caller's bytes
	case bugReencode:
		if _, err := lakesession.CompactItem(item); err != nil {
			return nil, err
		}
		var v map[string]any
		if err := json.Unmarshal(item, &v); err != nil {
			return nil, fmt.Errorf("%w: %v", lakesession.ErrInvalidItem, err)
		}
		return json.Marshal(v)
	}
	c, err := lakesession.CompactItem(item)
	if err != nil {
		return nil, err
	}
	switch {
	case s.m.bug == bugDropsNULEscape:
		c = []byte(strings.ReplaceAll(string(c), `\u0000`, ""))
	case s.m.bug == bugItemSizeLimit && len(c) > 64<<10:
		return nil, errors.New("value too long for type character varying(65536)")
	}
	return c, nil
}

func (s *memSession) PopItem(ctx context.Context) (json.RawMessage, error) {
	key, err := s.key(ctx, "pop item of")
	if err != nil {
		return nil, err
	}
	m := s.m
	m.mu.Lock()
	stored := m.sessions[key]
	if len(stored) == 0 {
		m.mu.Unlock()
		if m.bug == bugPopEmptyError {
			return nil, fmt.Errorf("pop item of session %q: no rows in result set", s.id)
		}
		return nil, nil
	}
	switch m.bug {
	case bugPopNoRemove:
		defer m.mu.Unlock()
		return slices.Clone(stored[len(stored)-1]), nil
	case bugPopOldest:
		defer m.mu.Unlock()
		it := stored[0]
		m.sessions[key] = stored[1:]
		return it, nil
	case bugPopRace:
		// Read the newest item, then delete it in a second step, as a
		// SELECT followed by a DELETE does.
		n := len(stored)
		it := stored[n-1]
		m.mu.Unlock()
		m.waitForOthers(s.id)
		m.mu.Lock()
		defer m.mu.Unlock()
		if len(m.sessions[key]) == n {
			m.sessions[key] = m.sessions[key][:n-1]
		}
		return slices.Clone(it), nil
	}
	defer m.mu.Unlock()
	it := stored[len(stored)-1]
	m.sessions[key] = stored[:len(stored)-1]
	return it, nil
}

// waitForOthers lets other goroutines run until another caller is also
// between two steps, or for at most 200 ms, when the session id has more
// than one handle (the suite's concurrent checks give each goroutine a
// handle of its own): it makes a race in a bug variant show without
// relying on the scheduler. (A count of yields ran out on a loaded machine
// before the other writers were scheduled.)
func (m *memStore) waitForOthers(id string) {
	m.mu.Lock()
	if m.handlesOf[id] < 2 {
		m.mu.Unlock()
		return
	}
	m.inflight++
	m.mu.Unlock()
	for deadline := time.Now().Add(200 * time.Millisecond); time.Now().Before(deadline); {
		m.mu.Lock()
		n := m.inflight
		m.mu.Unlock()
		if n >= 2 {
			break
		}
		runtime.Gosched()
		time.Sleep(50 * time.Microsecond)
	}
	m.mu.Lock()
	m.inflight--
	m.mu.Unlock()
}

func (s *memSession) ClearSession(ctx context.Context) error {
	key, err := s.key(ctx, "clear")
	if err != nil {
		return err
	}
	m := s.m
	m.mu.Lock()
	defer m.mu.Unlock()
	switch m.bug {
	case bugClearAll:
		clear(m.sessions)
		return nil
	case bugClearLike:
		re := regexp.MustCompile("^" + strings.NewReplacer("%", ".*", "_", ".").Replace(regexp.QuoteMeta(key)) + "$")
		for k := range m.sessions {
			if re.MatchString(k) {
				delete(m.sessions, k)
			}
		}
		return nil
	case bugClearUnknownErr:
		if _, ok := m.sessions[key]; !ok {
			return fmt.Errorf("clear session %q: no such session", s.id)
		}
	case bugClearOnCancel:
		for len(m.sessions[key]) > 0 {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("clear session %q: %w", s.id, err)
			}
			m.sessions[key] = m.sessions[key][1:]
		}
	}
	delete(m.sessions, key)
	return nil
}
