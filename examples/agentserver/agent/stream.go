package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/openai/openai-go/v3/responses"
)

// responseError is the "error" of a failed response.
type responseError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// sseWriter writes server-sent events in the shapes of the Responses API
// streaming events: each event has an "event:" line with its type and a
// "data:" line with a JSON object holding the same "type" and a
// "sequence_number".
type sseWriter struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	seq int
	err error // the first write error; later writes are skipped
}

func (s *sseWriter) send(typ string, fields map[string]any) error {
	if s.err != nil {
		return s.err
	}
	rest, err := json.Marshal(fields)
	if err != nil {
		s.err = err
		return err
	}
	// "type" and "sequence_number" first, as the Responses API sends them.
	head, err := json.Marshal(struct {
		Type string `json:"type"`
		Seq  int    `json:"sequence_number"`
	}{typ, s.seq})
	if err != nil {
		s.err = err
		return err
	}
	s.seq++
	data := head
	if len(fields) > 0 {
		data = append(append(head[:len(head)-1], ','), rest[1:]...)
	}
	if _, err := fmt.Fprintf(s.w, "event: %s\ndata: %s\n\n", typ, data); err != nil {
		s.err = err
		return err
	}
	if err := s.rc.Flush(); err != nil {
		s.err = err
	}
	return s.err
}

// stream answers one turn as server-sent events, in the shapes of the
// Responses API:
//
//	response.created, response.in_progress,
//	for each function call of the model:
//	  response.output_item.added, response.function_call_arguments.delta,
//	  response.function_call_arguments.done, response.output_item.done,
//	for each tool output:
//	  response.output_item.added, response.output_item.done,
//	for the assistant's message:
//	  response.output_item.added, response.content_part.added,
//	  response.output_text.delta (one per piece of text),
//	  then, once the turn is stored:
//	  response.output_text.done, response.content_part.done,
//	  response.output_item.done,
//	response.completed.
//
// Each item has the output_index of its place in the response's output.
// The completed response carries custom_outputs.session_id (so does the
// created one). When the model fails or the turn cannot be stored, the
// stream ends with response.failed instead, and nothing of the turn is
// stored, not even the calls and outputs already streamed.
func (h *Handler) stream(w http.ResponseWriter, r *http.Request, t *turn, resp *response) {
	ctx := r.Context()
	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	s := &sseWriter{w: w, rc: http.NewResponseController(w)}

	s.send("response.created", map[string]any{"response": resp})
	s.send("response.in_progress", map[string]any{"response": resp})
	if s.err != nil {
		return // the client went away before the model was called
	}

	events := &streamEvents{s: s}
	if err := h.runTurn(ctx, t, events); err != nil {
		if ctx.Err() != nil || s.err != nil {
			return // the client went away; nothing is stored
		}
		code := "server_error"
		switch err.kind {
		case failedModel:
			code = "model_error"
			h.logger().Error("model reply", "session_id", resp.CustomOutputs.SessionID, "err", err.err)
		case failedStorage:
			code = "storage_unavailable"
			h.logger().Error("store turn", "session_id", resp.CustomOutputs.SessionID, "err", err.err)
		default:
			h.logger().Error("turn", "session_id", resp.CustomOutputs.SessionID, "err", err.err)
		}
		resp.Status = "failed"
		resp.Error = &responseError{Code: code, Message: err.message()}
		s.send("response.failed", map[string]any{"response": resp})
		return
	}
	events.finish()
	resp.Status = "completed"
	resp.Output = t.output
	s.send("response.completed", map[string]any{"response": resp})
}

// streamEvents streams the items of a turn as they are produced. Its
// methods do nothing on a nil *streamEvents, the turn of a request that
// did not ask for a stream.
type streamEvents struct {
	s    *sseWriter
	next int // the output_index of the next item

	// The message whose text the current model call is streaming.
	open      bool
	openID    string
	openIndex int

	// The turn's final message, whose done events wait until the turn is
	// stored.
	final      *Item
	finalIndex int
}

// delta streams a piece of the model's message, announcing the message
// first if this is its first piece.
func (e *streamEvents) delta(text string) error {
	if !e.open {
		e.open, e.openID, e.openIndex = true, newID("msg_"), e.next
		e.next++
		e.added(e.openIndex, inProgressMessage(e.openID))
		e.s.send("response.content_part.added", map[string]any{
			"item_id": e.openID, "output_index": e.openIndex, "content_index": 0,
			"part": emptyOutputText(),
		})
	}
	return e.s.send("response.output_text.delta", map[string]any{
		"item_id": e.openID, "output_index": e.openIndex, "content_index": 0,
		"delta": text,
	})
}

// streamedFirst returns out with the message already streamed, if any,
// first: its text came before anything else of this model call.
func (e *streamEvents) streamedFirst(out []Item) []Item {
	if e == nil || !e.open {
		return out
	}
	for i, it := range out {
		if it.OfOutputMessage != nil {
			if i > 0 {
				out = append(append([]Item{it}, out[:i]...), out[i+1:]...)
			}
			break
		}
	}
	return out
}

// streamedID returns the id of the streamed message, for the item at index
// i of a model call's output, or "".
func (e *streamEvents) streamedID(i int) string {
	if e == nil || !e.open || i != 0 {
		return ""
	}
	return e.openID
}

// items streams the items of one model call (or a tool output). final says
// that they end the turn: their message's done events then wait for finish.
func (e *streamEvents) items(out []Item, final bool) error {
	if e == nil {
		return nil
	}
	defer func() { e.open = false }()
	if e.open && (len(out) == 0 || out[0].OfOutputMessage == nil) {
		return errors.New("the model streamed text but returned no message")
	}
	for i, it := range out {
		switch {
		case it.OfOutputMessage != nil:
			index := e.openIndex
			if !(i == 0 && e.open) {
				index = e.next
				e.next++
				e.added(index, inProgressMessage(it.OfOutputMessage.ID))
				e.s.send("response.content_part.added", map[string]any{
					"item_id": it.OfOutputMessage.ID, "output_index": index, "content_index": 0,
					"part": emptyOutputText(),
				})
				if _, text, _ := messageText(it); text != "" {
					e.s.send("response.output_text.delta", map[string]any{
						"item_id": it.OfOutputMessage.ID, "output_index": index, "content_index": 0,
						"delta": text,
					})
				}
			}
			if final {
				e.final, e.finalIndex = &out[i], index
			} else {
				e.messageDone(index, it)
			}
		case it.OfFunctionCall != nil:
			index := e.next
			e.next++
			fc := *it.OfFunctionCall
			fc.Arguments, fc.Status = "", "in_progress"
			e.added(index, Item{OfFunctionCall: &fc})
			id := it.OfFunctionCall.ID.Value
			e.s.send("response.function_call_arguments.delta", map[string]any{
				"item_id": id, "output_index": index, "delta": it.OfFunctionCall.Arguments,
			})
			e.s.send("response.function_call_arguments.done", map[string]any{
				"item_id": id, "output_index": index, "arguments": it.OfFunctionCall.Arguments,
			})
			e.s.send("response.output_item.done", map[string]any{"output_index": index, "item": it})
		default:
			index := e.next
			e.next++
			e.added(index, it)
			e.s.send("response.output_item.done", map[string]any{"output_index": index, "item": it})
		}
	}
	return nil
}

func (e *streamEvents) added(index int, it Item) {
	e.s.send("response.output_item.added", map[string]any{"output_index": index, "item": it})
}

// messageDone ends the streaming of a message.
func (e *streamEvents) messageDone(index int, it Item) {
	id := it.OfOutputMessage.ID
	for ci, part := range it.OfOutputMessage.Content {
		if part.OfOutputText != nil {
			e.s.send("response.output_text.done", map[string]any{
				"item_id": id, "output_index": index, "content_index": ci,
				"text": part.OfOutputText.Text,
			})
		}
		e.s.send("response.content_part.done", map[string]any{
			"item_id": id, "output_index": index, "content_index": ci,
			"part": part,
		})
	}
	e.s.send("response.output_item.done", map[string]any{"output_index": index, "item": it})
}

// finish ends the streaming of the turn's final message, once the turn is
// stored.
func (e *streamEvents) finish() {
	if e.final != nil {
		e.messageDone(e.finalIndex, *e.final)
	}
}

// inProgressMessage is an assistant message as announced before its text.
func inProgressMessage(id string) Item {
	return Item{OfOutputMessage: &responses.ResponseOutputMessageParam{
		ID:      id,
		Status:  "in_progress",
		Content: []responses.ResponseOutputMessageContentUnionParam{},
	}}
}

func emptyOutputText() responses.ResponseOutputTextParam {
	return responses.ResponseOutputTextParam{Annotations: []responses.ResponseOutputTextAnnotationUnionParam{}}
}
