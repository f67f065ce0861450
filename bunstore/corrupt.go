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

// valid reports whether data is valid JSON, and reports the row when not.
func (s *Store) valid(ctx context.Context, sessionID string, messageID int64, data []byte) bool {
	if json.Valid(data) {
		return true
	}
	// Unmarshal fails on data that is not valid JSON and says why.
	err := json.Unmarshal(data, new(json.RawMessage))
	c := CorruptItem{SessionID: sessionID, MessageID: messageID, Data: string(data), Err: fmt.Errorf("%w: %v", ErrCorruptItem, err)}
	if s.cfg.corrupt != nil {
		s.cfg.corrupt(ctx, c)
		return false
	}
	s.cfg.logger.WarnContext(ctx, "lakesession: skipped a stored item that is not valid JSON",
		"session_id", c.SessionID,
		"message_id", c.MessageID,
		"table", s.cfg.messages,
		"bytes", len(data),
		"error", c.Err)
	return false
}
