package openaisession

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/openai/openai-go/v3/packages/param"
	"github.com/openai/openai-go/v3/responses"

	"github.com/lakesession/lakesession"
)

// Session is a lakesession.Session seen through openai-go's types: items go
// in and come out as responses.ResponseInputItemUnionParam, stored as the
// JSON the Responses API takes, so Go and Python agents can share them.
//
// Its methods SessionID, GetItems, AddItems, PopItem and ClearSession are
// those of the memory.Session interface of github.com/nlpodyssey/openai-agents-go,
// so that package's Runner can keep its history here. History and AddTurn
// serve an agent loop written with openai-go alone.
//
// A Session is as safe for concurrent use as the lakesession.Session under
// it (every store of package bunstore is).
//
// # Items openai-go does not know
//
// Reads never fail, and never drop an item, because of what the item holds:
// a stored item that Decode rejects (a type newer than the pinned openai-go,
// or an item another program wrote in a shape openai-go cannot read) comes
// back as a pass-through item, with no Of field set, made with
// param.Override from the stored JSON. openai-go sends it to the API as
// that JSON, Encode and AddItems store it as that JSON, and Decode of
// Encode's result tells what it is. Code that switches on the Of fields sees
// none set, and should let such items through as they are.
type Session struct {
	s lakesession.Session
}

// New returns s seen through openai-go's types. s must not be nil.
func New(s lakesession.Session) *Session {
	return &Session{s: s}
}

// SessionID returns the id of the session.
func (s *Session) SessionID(ctx context.Context) string {
	return s.s.SessionID()
}

// GetItems returns the session's items, oldest first, as they are stored:
// limit <= 0 returns all of them, limit > 0 the latest limit items. It does
// not repair the window; to send items to a model, use History.
func (s *Session) GetItems(ctx context.Context, limit int) ([]responses.ResponseInputItemUnionParam, error) {
	raws, err := s.s.GetItems(ctx, limit)
	if err != nil {
		return nil, err
	}
	return decodeStored(raws), nil
}

// History returns what to send to a model from the session: its latest
// limit items (all of them when limit <= 0), oldest first, passed through
// lakesession.RepairHistory, which drops the items that would make the
// Responses API reject the list (a tool output whose call is older than the
// window, a call whose output is missing, a reasoning item without the item
// it led to, ...).
//
// When the window cuts into a response, so that it starts with items the
// model produced (calls, an answer) whose response began before the
// window, History also leaves those items out if that response began with
// a reasoning item: the Responses API rejects a call or an answer of a
// reasoning model sent without the reasoning item it came with ("provided
// without its required 'reasoning' item"), and the tool outputs of the
// calls left out go with them. To see where that response began, History
// reads up to 8 items before the window, in the same call to GetItems
// (limit+8 items); a response with more items than that before the window
// is taken to have begun with reasoning (one that began the session is
// seen to have begun without).
//
// So the list can be shorter than limit, and limit stays a bound on what
// the model is sent. Stored items are not changed.
//
// Call History once per user turn, before its first request, and keep the
// turn's own items in memory for the requests that follow within the turn
// (send the history, then the turn's items so far: its input, the output
// items of each response as InputItems returns them, and the tools'
// outputs). Calling History again in the middle of a turn does not work:
// the call a response just made is the newest stored item, its output is
// not stored yet, so History leaves the call out (and its reasoning), and
// a request that sends the call's output after it is rejected by the API.
func (s *Session) History(ctx context.Context, limit int) ([]responses.ResponseInputItemUnionParam, error) {
	n := limit
	if limit > 0 {
		n = limit + lookBehind
	}
	raws, err := s.s.GetItems(ctx, n)
	if err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	if limit > 0 && len(raws) > limit {
		before := len(raws) - limit
		raws = raws[before+cutResponse(raws[:before], raws[before:], len(raws) < n):]
	}
	return decodeStored(lakesession.RepairHistory(raws)), nil
}

// lookBehind is how many items before its window History reads to find
// where a response the window cuts into began.
const lookBehind = 8

// cutResponse returns how many items at the start of window History leaves
// out: the run of items of a response it starts with (see kindOf) when that
// response began before the window with a reasoning item, or more than
// len(before) items before it, else 0. before holds the items just before
// the window; whole says that it begins with the session's first item.
func cutResponse(before, window []json.RawMessage, whole bool) int {
	run := 0
	for run < len(window) && kindOf(window[run]) == kindModel {
		run++
	}
	if run == 0 {
		return 0
	}
	for i := len(before) - 1; i >= 0; i-- {
		switch kindOf(before[i]) {
		case kindModel:
			continue // the same response, begun earlier
		case kindReasoning:
			return run
		default:
			return 0 // the response began after this item, without reasoning
		}
	}
	if whole {
		return 0 // the response began the session, without reasoning
	}
	return run // begun too far back to see
}

type itemKind int

const (
	kindOther     itemKind = iota
	kindModel              // an item a response produces after its reasoning (see kindOf)
	kindReasoning          // a reasoning item
)

// kindOf reads an item's top-level "type", "role" and "call_id" as
// RepairHistory does (exact names, the last of repeated keys, a value that
// is not a string counts as absent, as does an empty call_id). The items a
// response produces after its reasoning (kindModel) are an assistant
// message, a call of any kind (a type ending in "_call", "program"), an
// mcp_approval_request, and the results the API produced itself in the
// response: mcp_list_tools and an output item without a call_id (a
// server-run tool search). A user, system or developer message and the
// output of a call the client answered (one with a call_id) come from the
// client; item references, unknown types and items that are not JSON
// objects are kindOther too.
func kindOf(raw json.RawMessage) itemKind {
	if !json.Valid(raw) {
		return kindOther
	}
	var buf [16]member
	top := members(buf[:0], raw)
	if top == nil {
		return kindOther
	}
	str := func(name string) (string, bool) {
		v, ok := lookup(top, name)
		if !ok || v[0] != '"' {
			return "", false
		}
		return decodeString(v), true
	}
	typ, hasType := str("type")
	switch {
	case typ == "reasoning":
		return kindReasoning
	case !hasType || typ == "message":
		if role, _ := str("role"); role == "assistant" {
			return kindModel
		}
	case typ == "program", strings.HasSuffix(typ, "_call"), typ == "mcp_approval_request", typ == "mcp_list_tools":
		return kindModel
	case typ == "tool_search_output":
		if id, _ := str("call_id"); id == "" {
			return kindModel
		}
	}
	return kindOther
}

// AddItems appends items to the session as one atomic batch, in the given
// order, each stored as Encode returns it. An item that cannot be encoded
// (no variant set, or more than one) fails the whole batch with an error
// that wraps lakesession.ErrInvalidItem and names its index, and nothing is
// written. An empty slice is a no-op.
func (s *Session) AddItems(ctx context.Context, items []responses.ResponseInputItemUnionParam) error {
	if len(items) == 0 {
		return nil
	}
	raws := make([]json.RawMessage, len(items))
	for i, it := range items {
		raw, err := Encode(it)
		if err != nil {
			return fmt.Errorf("add items to session %q: item %d: %w", s.s.SessionID(), i, err)
		}
		raws[i] = raw
	}
	return s.s.AddItems(ctx, raws)
}

// AddTurn stores one turn of an agent loop: the input items the turn sent
// (the new ones, not the history) and the output items of the model's
// response, in that order, as one AddItems batch, so the turn is stored
// whole or not at all and no other turn's items come between its own.
//
// The output items are stored exactly as the API returned them: their
// RawJSON, which keeps every field, including those this openai-go does not
// know. An output item with no raw JSON (built in code rather than decoded
// from a response) cannot be stored that way: AddTurn then fails with an
// error that wraps lakesession.ErrInvalidItem and names it, and writes
// nothing; pass such an item in input instead, as the input item it stands
// for. So does an input item that cannot be encoded.
func (s *Session) AddTurn(ctx context.Context, input []responses.ResponseInputItemUnionParam, output []responses.ResponseOutputItemUnion) error {
	raws := make([]json.RawMessage, 0, len(input)+len(output))
	for i, it := range input {
		raw, err := Encode(it)
		if err != nil {
			return fmt.Errorf("add turn to session %q: input item %d: %w", s.s.SessionID(), i, err)
		}
		raws = append(raws, raw)
	}
	for i, it := range output {
		raw, err := outputJSON(it)
		if err != nil {
			return fmt.Errorf("add turn to session %q: output item %d: %w", s.s.SessionID(), i, err)
		}
		raws = append(raws, raw)
	}
	if len(raws) == 0 {
		return nil
	}
	return s.s.AddItems(ctx, raws)
}

// PopItem removes and returns the newest item, or (nil, nil) when the
// session is empty. An item that Decode rejects comes back as a pass-through
// item (see Session), so a popped item is never lost.
func (s *Session) PopItem(ctx context.Context) (*responses.ResponseInputItemUnionParam, error) {
	raw, err := s.s.PopItem(ctx)
	if err != nil || raw == nil {
		return nil, err
	}
	it := decodeOne(raw)
	return &it, nil
}

// ClearSession removes every item of the session and the session itself.
func (s *Session) ClearSession(ctx context.Context) error {
	return s.s.ClearSession(ctx)
}

// InputItems returns the output items of a response as the input items
// that stand for them in the next request of the same turn, such as a
// request that sends the outputs of the tools the response called: each is
// decoded, as Decode does, from the JSON the API returned (its RawJSON), so
// it is sent back with every field it came with. An item that Decode
// rejects (a type newer than this openai-go) becomes a pass-through item
// (see Session), sent as that JSON.
//
// An output item with no raw JSON (built in code rather than decoded from a
// response) gets an error that wraps lakesession.ErrInvalidItem and names
// it, as in AddTurn.
func InputItems(output []responses.ResponseOutputItemUnion) ([]responses.ResponseInputItemUnionParam, error) {
	items := make([]responses.ResponseInputItemUnionParam, len(output))
	for i, it := range output {
		raw, err := outputJSON(it)
		if err != nil {
			return nil, fmt.Errorf("output item %d: %w", i, err)
		}
		items[i] = decodeOne(raw)
	}
	return items, nil
}

// outputJSON returns the JSON in which the API returned an output item,
// compact, as a Session stores it.
func outputJSON(it responses.ResponseOutputItemUnion) (json.RawMessage, error) {
	raw := it.RawJSON()
	if raw == "" {
		return nil, fmt.Errorf("%w: it has no raw JSON, so it was not decoded from an API response; pass it in input, as an input item", lakesession.ErrInvalidItem)
	}
	return lakesession.CompactItem(json.RawMessage(raw))
}

func decodeStored(raws []json.RawMessage) []responses.ResponseInputItemUnionParam {
	items := make([]responses.ResponseInputItemUnionParam, len(raws))
	for i, raw := range raws {
		items[i] = decodeOne(raw)
	}
	return items
}

// decodeOne decodes a stored item, or returns it as a pass-through item.
func decodeOne(raw json.RawMessage) responses.ResponseInputItemUnionParam {
	it, err := Decode(raw)
	if err != nil {
		return param.Override[responses.ResponseInputItemUnionParam](json.RawMessage(raw))
	}
	return it
}
