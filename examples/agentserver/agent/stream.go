package agent

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/lakesession/lakesession"
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

// stream answers one turn as server-sent events:
//
//	response.created, response.in_progress,
//	response.output_item.added, response.content_part.added,
//	response.output_text.delta (one per piece of text),
//	then, once the turn is stored:
//	response.output_text.done, response.content_part.done,
//	response.output_item.done, response.completed.
//
// The completed response carries custom_outputs.session_id (so does the
// created one). When the model fails or the turn cannot be stored, the
// stream ends with response.failed instead, and nothing of the turn is
// stored.
func (h *Handler) stream(w http.ResponseWriter, r *http.Request, sess lakesession.Session, inv *invocation, conversation []json.RawMessage, resp *response) {
	ctx := r.Context()
	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	s := &sseWriter{w: w, rc: http.NewResponseController(w)}

	fail := func(code, msg string) {
		resp.Status = "failed"
		resp.Error = &responseError{Code: code, Message: msg}
		s.send("response.failed", map[string]any{"response": resp})
	}

	s.send("response.created", map[string]any{"response": resp})
	s.send("response.in_progress", map[string]any{"response": resp})
	itemID := newID("msg_")
	s.send("response.output_item.added", map[string]any{
		"output_index": 0,
		"item":         newOutputMessage(itemID, "", "in_progress"),
	})
	s.send("response.content_part.added", map[string]any{
		"item_id": itemID, "output_index": 0, "content_index": 0,
		"part": newOutputText(""),
	})
	if s.err != nil {
		return // the client went away before the model was called
	}

	text, err := h.Model.Reply(ctx, conversation, func(delta string) error {
		return s.send("response.output_text.delta", map[string]any{
			"item_id": itemID, "output_index": 0, "content_index": 0,
			"delta": delta,
		})
	})
	if err != nil {
		if ctx.Err() != nil || s.err != nil {
			return // the client went away; nothing is stored
		}
		h.logger().Error("model reply", "session_id", inv.sessionID, "err", err)
		fail("model_error", "the model did not answer: "+err.Error())
		return
	}

	item := newOutputMessage(itemID, text, "completed")
	out, err := json.Marshal(item)
	if err != nil {
		fail("server_error", "could not encode the reply")
		return
	}
	if err := sess.AddItems(ctx, turnItems(inv.input, out)); err != nil {
		if ctx.Err() != nil {
			return
		}
		h.logger().Error("store turn", "session_id", inv.sessionID, "err", err)
		fail("storage_unavailable", "the session store is unavailable, so the turn was not stored; try again later")
		return
	}

	s.send("response.output_text.done", map[string]any{
		"item_id": itemID, "output_index": 0, "content_index": 0,
		"text": text,
	})
	s.send("response.content_part.done", map[string]any{
		"item_id": itemID, "output_index": 0, "content_index": 0,
		"part": item.Content[0],
	})
	s.send("response.output_item.done", map[string]any{"output_index": 0, "item": item})
	resp.Status = "completed"
	resp.Output = append(resp.Output, out)
	s.send("response.completed", map[string]any{"response": resp})
}
