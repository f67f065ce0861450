package openaisession_test

import (
	"context"

	"github.com/openai/openai-go/v3/responses"

	"github.com/lakesession/lakesession/openaisession"
)

// The interface below is memory.Session of github.com/nlpodyssey/openai-agents-go
// (memory/session.go, the version on openai-go v3; Copyright 2025 The NLP
// Odyssey Authors, Apache License 2.0), copied as it is, comments included,
// but for its name (Session names the type of this package in its
// examples), so that this module does not depend on that one. openaisession.Session
// must keep implementing it, so that the Runner of openai-agents-go can keep
// its history in a lakesession store.

// TResponseInputItem is a type alias for the ResponseInputItemUnionParam type from the OpenAI SDK.
type TResponseInputItem = responses.ResponseInputItemUnionParam

// A Session stores conversation history for a specific session, allowing
// agents to maintain context without requiring explicit manual memory management.
type memorySession interface {
	SessionID(context.Context) string

	// GetItems retrieves the conversation history for this session.
	//
	// `limit` is the maximum number of items to retrieve. If <= 0, retrieves all items.
	// When specified, returns the latest N items in chronological order.
	GetItems(ctx context.Context, limit int) ([]TResponseInputItem, error)

	// AddItems adds new items to the conversation history.
	AddItems(ctx context.Context, items []TResponseInputItem) error

	// PopItem removes and returns the most recent item from the session.
	// It returns nil if the session is empty.
	PopItem(context.Context) (*TResponseInputItem, error)

	// ClearSession clears all items for this session.
	ClearSession(context.Context) error
}

var _ memorySession = (*openaisession.Session)(nil)
