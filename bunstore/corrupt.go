package bunstore

import (
	"context"
	"encoding/json"
	"fmt"
)

// CorruptItem describes a stored item that is not valid JSON, found by
// GetItems (which skips it) or PopItem (which removes it and pops the next
// one). Such rows are written by other programs or by hand, never by this
// package.
type CorruptItem struct {
	// SessionID is the session the row belongs to.
	SessionID string
	// MessageID is the row's id in the messages table.
	MessageID int64
	// Data is the row's message_data as stored.
	Data string
	// Err says why Data is not valid JSON; it wraps ErrCorruptItem.
	Err error
}

// checkItem reports whether data is valid JSON. When it is not, it adds
// the row to *bad, for report once the call that read it succeeds.
func (s *Store) checkItem(sessionID string, messageID int64, data []byte, bad *[]CorruptItem) bool {
	if json.Valid(data) {
		return true
	}
	// Unmarshal fails on data that is not valid JSON and says why.
	err := json.Unmarshal(data, new(json.RawMessage))
	*bad = append(*bad, CorruptItem{SessionID: sessionID, MessageID: messageID, Data: string(data), Err: fmt.Errorf("%w: %v", ErrCorruptItem, err)})
	return false
}

// report hands the corrupt rows a call found to the WithCorruptItemHandler
// function, or else logs them. A call reports the rows of its successful
// try only, so a retried read reports each row once.
func (s *Store) report(ctx context.Context, bad []CorruptItem) {
	if len(bad) == 0 {
		return
	}
	s.tel.countCorrupt(ctx, len(bad))
	for _, c := range bad {
		if s.cfg.corrupt != nil {
			s.cfg.corrupt(ctx, c)
			continue
		}
		s.cfg.logger.WarnContext(ctx, "lakesession: skipped a stored item that is not valid JSON",
			"session_id", c.SessionID,
			"message_id", c.MessageID,
			"table", s.cfg.messages,
			"bytes", len(c.Data),
			"error", c.Err)
	}
}
