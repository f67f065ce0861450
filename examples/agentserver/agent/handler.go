package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/trace"

	"github.com/lakesession/lakesession"
	"github.com/lakesession/lakesession/openaisession"
)

// DefaultMaxBodyBytes is the largest request body a Handler accepts when
// Handler.MaxBodyBytes is zero.
const DefaultMaxBodyBytes = 4 << 20

// DefaultMaxModelCalls is how many times a Handler calls the model in one
// turn, at most, when Handler.MaxModelCalls is zero.
const DefaultMaxModelCalls = 5

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

	// Tools are offered to the model in every turn; none when empty. Their
	// names must be distinct.
	Tools []Tool

	// MaxModelCalls bounds the calls of the model in one turn: a turn in
	// which the model still calls tools after that many calls fails, and
	// nothing of it is stored. Zero or less means DefaultMaxModelCalls.
	MaxModelCalls int

	// HistoryLimit is how many of the latest history items are read for
	// the model (see openaisession.Session.History, which drops a tool
	// output whose call the window cut off); zero or less means all of
	// them.
	HistoryLimit int

	// MaxBodyBytes limits the size of a request body; zero means
	// DefaultMaxBodyBytes.
	MaxBodyBytes int64

	// Logger receives one line per failed request; nil means slog.Default().
	Logger *slog.Logger

	// TracerProvider makes a span per model call ("chat <model>") and per
	// tool call ("execute_tool <tool>"), children of the span in the
	// request's context; nil means otel.GetTracerProvider(). Their
	// attributes name the model, the tool and the call id, never content.
	TracerProvider trace.TracerProvider

	toolsOnce sync.Once
	toolsErr  error
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
	input     []Item
	stream    bool
}

// requestError is a problem with the request, answered with 400.
type requestError struct{ msg string }

func (e *requestError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &requestError{msg: fmt.Sprintf(format, args...)}
}

// parseRequest validates body: a JSON object with a non-empty "input" array
// of Responses-API items that the model can take as they are (see
// checkPairs), an optional "custom_inputs" object with an optional string
// "session_id", and an optional boolean "stream".
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
	for i, r := range raw {
		item, err := openaisession.Decode(r)
		if err != nil {
			return nil, badRequest("input[%d]: %v", i, err)
		}
		inv.input = append(inv.input, item)
	}
	if err := checkPairs(raw); err != nil {
		return nil, err
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
	h.toolsOnce.Do(func() { h.toolsErr = validateTools(h.Tools) })
	if h.toolsErr != nil {
		h.logger().Error("agent handler misconfigured", "err", h.toolsErr)
		writeError(w, http.StatusInternalServerError, "server_error", "the server's tools are misconfigured; see its log")
		return
	}
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
	sess := openaisession.New(h.Sessions(inv.sessionID))
	history, err := sess.History(ctx, h.HistoryLimit)
	if err != nil {
		h.storageFailed(w, r, inv.sessionID, "read history", err)
		return
	}
	t := &turn{
		sess:  sess,
		input: inv.input,
		conv:  append(append(make([]Item, 0, len(history)+len(inv.input)+4), history...), inv.input...),
	}
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
		h.stream(w, r, t, resp)
		return
	}

	if err := h.runTurn(ctx, t, nil); err != nil {
		h.turnFailed(w, r, inv.sessionID, err)
		return
	}
	resp.Status = "completed"
	resp.Output = t.output
	writeJSON(w, http.StatusOK, resp)
}

// turnFailed answers a turn that failed before anything was streamed.
func (h *Handler) turnFailed(w http.ResponseWriter, r *http.Request, sessionID string, err *turnError) {
	switch err.kind {
	case failedModel:
		if r.Context().Err() != nil {
			return // the client went away
		}
		h.logger().Error("model reply", "session_id", sessionID, "err", err.err)
		writeError(w, http.StatusBadGateway, "model_error", err.message())
	case failedStorage:
		h.storageFailed(w, r, sessionID, "store turn", err.err)
	default:
		h.logger().Error("turn", "session_id", sessionID, "err", err.err)
		writeError(w, http.StatusInternalServerError, "server_error", err.message())
	}
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
