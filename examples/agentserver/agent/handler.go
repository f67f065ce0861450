package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/lakesession/lakesession"
)

// Model produces the assistant's reply to a conversation.
type Model interface {
	// Name names the model in responses.
	Name() string

	// Reply returns the assistant's text reply to items, the conversation
	// so far, oldest first: the session's history, then the new input
	// items. When onDelta is not nil, Reply calls it with each piece of the
	// text as it is produced, in order; the pieces add up to the returned
	// text. An error from onDelta stops the reply and is returned.
	Reply(ctx context.Context, items []json.RawMessage, onDelta func(string) error) (string, error)
}

// DefaultMaxBodyBytes is the largest request body a Handler accepts when
// Handler.MaxBodyBytes is zero.
const DefaultMaxBodyBytes = 4 << 20

// Handler serves the agent: POST /invocations runs one turn of a
// conversation and GET /healthz reports that the server is up. It is safe
// for concurrent use; set its fields before serving and do not change them
// after.
type Handler struct {
	// Sessions opens the session of an id; required. With a bunstore.Store:
	//
	//	func(id string) lakesession.Session { return store.Session(id) }
	Sessions func(id string) lakesession.Session

	// Model answers each turn; required.
	Model Model

	// HistoryLimit is how many of the latest history items the model sees;
	// zero or less means all of them.
	HistoryLimit int

	// MaxBodyBytes limits the size of a request body; zero means
	// DefaultMaxBodyBytes.
	MaxBodyBytes int64

	// Logger receives one line per failed request; nil means slog.Default().
	Logger *slog.Logger
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/invocations":
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			writeError(w, http.StatusMethodNotAllowed, "invalid_request_error", "use POST for /invocations")
			return
		}
		h.invoke(w, r)
	case "/healthz":
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	default:
		writeError(w, http.StatusNotFound, "not_found", "no such path: use POST /invocations")
	}
}

// invocation is one validated request.
type invocation struct {
	sessionID string
	input     []json.RawMessage // compact JSON objects
	stream    bool
}

// requestError is a problem with the request, answered with 400.
type requestError struct{ msg string }

func (e *requestError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &requestError{msg: fmt.Sprintf(format, args...)}
}

// parseRequest validates body: a JSON object with a non-empty "input" array
// of JSON objects, an optional "custom_inputs" object with an optional
// string "session_id", and an optional boolean "stream".
func parseRequest(body []byte) (*invocation, error) {
	var req struct {
		Input        json.RawMessage `json:"input"`
		CustomInputs json.RawMessage `json:"custom_inputs"`
		Stream       json.RawMessage `json:"stream"`
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return nil, badRequest(`the request body is empty; send a JSON object such as {"input":[{"role":"user","content":"Hello"}]}`)
	}
	if !json.Valid(trimmed) {
		return nil, badRequest(`the request body is not valid JSON; send a JSON object such as {"input":[{"role":"user","content":"Hello"}]}`)
	}
	if trimmed[0] != '{' {
		return nil, badRequest(`the request body must be a JSON object such as {"input":[{"role":"user","content":"Hello"}]}`)
	}
	if err := json.Unmarshal(trimmed, &req); err != nil {
		return nil, badRequest("the request body cannot be read: %v", err)
	}

	inv := &invocation{}
	if isNull(req.Input) {
		return nil, badRequest(`"input" is missing; send a non-empty array of items such as [{"role":"user","content":"Hello"}]`)
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(req.Input, &raw); err != nil {
		return nil, badRequest(`"input" must be an array of items such as [{"role":"user","content":"Hello"}]`)
	}
	if len(raw) == 0 {
		return nil, badRequest(`"input" is empty; send at least one item such as {"role":"user","content":"Hello"}`)
	}
	for i, item := range raw {
		c, err := lakesession.CompactItem(item)
		if err != nil {
			return nil, badRequest("input[%d]: %v", i, err)
		}
		inv.input = append(inv.input, c)
	}

	if !isNull(req.CustomInputs) {
		var ci map[string]json.RawMessage
		if err := json.Unmarshal(req.CustomInputs, &ci); err != nil {
			return nil, badRequest(`"custom_inputs" must be a JSON object such as {"session_id":"..."}`)
		}
		if sid, ok := ci["session_id"]; ok && !isNull(sid) {
			if err := json.Unmarshal(sid, &inv.sessionID); err != nil {
				return nil, badRequest(`"custom_inputs.session_id" must be a string; leave it out to start a new session`)
			}
			if err := lakesession.ValidateSessionID(inv.sessionID); err != nil {
				return nil, badRequest(`"custom_inputs.session_id": %v`, err)
			}
		}
	}

	if !isNull(req.Stream) {
		if err := json.Unmarshal(req.Stream, &inv.stream); err != nil {
			return nil, badRequest(`"stream" must be true or false`)
		}
	}
	return inv, nil
}

func isNull(v json.RawMessage) bool {
	return len(v) == 0 || string(v) == "null"
}

// response is the body of a non-streamed answer, and the "response" object
// of the streamed events.
type response struct {
	ID            string            `json:"id"`
	Object        string            `json:"object"`
	CreatedAt     int64             `json:"created_at"`
	Status        string            `json:"status"`
	Model         string            `json:"model"`
	Output        []json.RawMessage `json:"output"`
	Error         *responseError    `json:"error,omitempty"`
	CustomOutputs customOutputs     `json:"custom_outputs"`
}

type customOutputs struct {
	SessionID string `json:"session_id"`
}

func (h *Handler) logger() *slog.Logger {
	if h.Logger != nil {
		return h.Logger
	}
	return slog.Default()
}

func (h *Handler) invoke(w http.ResponseWriter, r *http.Request) {
	limit := h.MaxBodyBytes
	if limit <= 0 {
		limit = DefaultMaxBodyBytes
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeError(w, http.StatusRequestEntityTooLarge, "invalid_request_error",
				fmt.Sprintf("the request body is larger than %d bytes", limit))
			return
		}
		writeError(w, http.StatusBadRequest, "invalid_request_error", "the request body could not be read")
		return
	}
	inv, err := parseRequest(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request_error", err.Error())
		return
	}
	if inv.sessionID == "" {
		id, err := uuid.NewV7()
		if err != nil {
			h.logger().Error("new session id", "err", err)
			writeError(w, http.StatusInternalServerError, "server_error", "could not make a session id")
			return
		}
		inv.sessionID = id.String()
	}

	ctx := r.Context()
	sess := h.Sessions(inv.sessionID)
	history, err := sess.GetItems(ctx, h.HistoryLimit)
	if err != nil {
		h.storageFailed(w, r, inv.sessionID, "read history", err)
		return
	}
	conversation := make([]json.RawMessage, 0, len(history)+len(inv.input))
	conversation = append(conversation, history...)
	conversation = append(conversation, inv.input...)

	resp := &response{
		ID:            newID("resp_"),
		Object:        "response",
		CreatedAt:     time.Now().Unix(),
		Status:        "in_progress",
		Model:         h.Model.Name(),
		Output:        []json.RawMessage{},
		CustomOutputs: customOutputs{SessionID: inv.sessionID},
	}
	if inv.stream {
		h.stream(w, r, sess, inv, conversation, resp)
		return
	}

	text, err := h.Model.Reply(ctx, conversation, nil)
	if err != nil {
		if ctx.Err() != nil {
			return // the client went away
		}
		h.logger().Error("model reply", "session_id", inv.sessionID, "err", err)
		writeError(w, http.StatusBadGateway, "model_error", "the model did not answer: "+err.Error())
		return
	}
	out, err := json.Marshal(newOutputMessage(newID("msg_"), text, "completed"))
	if err != nil {
		writeError(w, http.StatusInternalServerError, "server_error", "could not encode the reply")
		return
	}
	if err := sess.AddItems(ctx, turnItems(inv.input, out)); err != nil {
		h.storageFailed(w, r, inv.sessionID, "store turn", err)
		return
	}
	resp.Status = "completed"
	resp.Output = append(resp.Output, out)
	writeJSON(w, http.StatusOK, resp)
}

// turnItems returns the items of one turn, stored with one AddItems: the
// new input items, then the model's output items.
func turnItems(input []json.RawMessage, output ...json.RawMessage) []json.RawMessage {
	items := make([]json.RawMessage, 0, len(input)+len(output))
	items = append(items, input...)
	return append(items, output...)
}

// storageFailed answers a storage error: 400 for a session id the store
// rejects, nothing when the client has gone, and 503 otherwise.
func (h *Handler) storageFailed(w http.ResponseWriter, r *http.Request, sessionID, op string, err error) {
	switch {
	case errors.Is(err, lakesession.ErrInvalidSessionID), errors.Is(err, lakesession.ErrInvalidItem):
		writeError(w, http.StatusBadRequest, "invalid_request_error", err.Error())
	case r.Context().Err() != nil:
		// The client went away; the turn was not stored.
	default:
		h.logger().Error(op, "session_id", sessionID, "err", err)
		writeError(w, http.StatusServiceUnavailable, "storage_unavailable",
			"the session store is unavailable, so the turn was not stored; try again later")
	}
}

// errorBody is the error object of error responses and failed streams.
type errorBody struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}

func writeError(w http.ResponseWriter, status int, typ, msg string) {
	writeJSON(w, status, map[string]errorBody{"error": {Type: typ, Message: msg}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"type":"server_error","message":"could not encode the response"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}
