package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/openai/openai-go/v3/packages/param"
	"github.com/openai/openai-go/v3/responses"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/lakesession/lakesession"
	"github.com/lakesession/lakesession/openaisession"
)

// checkPairs reports the first input item that the model could not take as
// part of the input: a tool output whose call is not earlier in the input,
// a call whose output is not later in it, a reasoning item not followed by
// the item it led to, ... (the rules of lakesession.RepairHistory). The
// history is repaired when it is read, so history and input together are a
// list the model accepts.
func checkPairs(raw []json.RawMessage) error {
	kept := lakesession.RepairHistory(raw)
	if len(kept) == len(raw) {
		return nil
	}
	// kept is a subsequence of raw, of the same elements: the first that
	// differs is the first dropped.
	i := 0
	for i < len(kept) && &kept[i][0] == &raw[i][0] {
		i++
	}
	var it struct {
		Type   string `json:"type"`
		CallID string `json:"call_id"`
	}
	json.Unmarshal(raw[i], &it)
	switch {
	case it.Type == "reasoning":
		return badRequest("input[%d]: a reasoning item must be followed by the assistant message or call it led to", i)
	case it.Type == "mcp_approval_response":
		return badRequest("input[%d]: an mcp_approval_response needs its mcp_approval_request earlier in the input", i)
	case strings.HasSuffix(it.Type, "_output"):
		return badRequest("input[%d]: a %s needs its call (call_id %q) earlier in the input", i, it.Type, clip(it.CallID, 64))
	default:
		return badRequest("input[%d]: a %s needs its output (call_id %q) later in the input; send the call and its output together, or neither", i, it.Type, clip(it.CallID, 64))
	}
}

// turn is one turn in progress.
type turn struct {
	sess     *openaisession.Session
	input    []Item            // the request's items
	conv     []Item            // history, input, then what the turn produced
	produced []Item            // the model's items and the tools' outputs, in order
	output   []json.RawMessage // produced, encoded, once the turn is stored
}

// failure kinds of a turn.
const (
	failedModel   = iota + 1 // the model failed: 502
	failedStorage            // the store failed: 503 (400 for a bad id)
	failedServer             // anything else: 500
)

// turnError is why a turn failed; nothing of it was stored.
type turnError struct {
	kind int
	err  error
}

// message is what the client is told.
func (e *turnError) message() string {
	switch e.kind {
	case failedModel:
		return "the model did not answer: " + e.err.Error()
	case failedStorage:
		return "the session store is unavailable, so the turn was not stored; try again later"
	default:
		return "the turn failed: " + e.err.Error()
	}
}

// runTurn runs the turn t: it calls the model, runs the tools the model
// calls and gives it their outputs, until the model answers without calling
// a tool (at most Handler.MaxModelCalls calls), then stores the input and
// everything produced with one AddItems. events, when not nil, is told of
// each step as it happens.
func (h *Handler) runTurn(ctx context.Context, t *turn, events *streamEvents) *turnError {
	maxCalls := h.MaxModelCalls
	if maxCalls <= 0 {
		maxCalls = DefaultMaxModelCalls
	}
	tracer := h.tracer()
	for n := 1; ; n++ {
		req := Request{Items: t.conv, Tools: h.Tools}
		if events != nil {
			req.OnDelta = events.delta
		}
		out, err := h.respond(ctx, tracer, req)
		if err != nil {
			return &turnError{failedModel, err}
		}
		out = events.streamedFirst(out)
		final := true
		for i := range out {
			if out[i].OfFunctionCall != nil {
				final = false
			}
		}
		for i := range out {
			setIDs(&out[i], events.streamedID(i))
		}
		t.conv = append(t.conv, out...)
		t.produced = append(t.produced, out...)
		if err := events.items(out, final); err != nil {
			return &turnError{failedModel, err}
		}
		if final {
			break
		}
		if n == maxCalls {
			return &turnError{failedModel, fmt.Errorf("it still called tools after %d calls in this turn", maxCalls)}
		}
		for _, it := range out {
			if it.OfFunctionCall == nil {
				continue
			}
			res := functionCallOutput(it.OfFunctionCall.CallID, h.callTool(ctx, tracer, it.OfFunctionCall))
			if err := ctx.Err(); err != nil {
				return &turnError{failedModel, err}
			}
			t.conv = append(t.conv, res)
			t.produced = append(t.produced, res)
			events.items([]Item{res}, false)
		}
	}

	t.output = make([]json.RawMessage, len(t.produced))
	for i, it := range t.produced {
		raw, err := openaisession.Encode(it)
		if err != nil {
			return &turnError{failedServer, fmt.Errorf("encode output item %d: %w", i, err)}
		}
		t.output[i] = raw
	}
	items := make([]Item, 0, len(t.input)+len(t.produced))
	items = append(append(items, t.input...), t.produced...)
	if err := t.sess.AddItems(ctx, items); err != nil {
		return &turnError{failedStorage, err}
	}
	return nil
}

// setIDs gives a message or a call made by the model the ids it lacks:
// streamed is the id under which the message was already streamed, if any.
func setIDs(it *Item, streamed string) {
	switch {
	case it.OfOutputMessage != nil && it.OfOutputMessage.ID == "":
		it.OfOutputMessage.ID = streamed
		if streamed == "" {
			it.OfOutputMessage.ID = newID("msg_")
		}
	case it.OfFunctionCall != nil:
		if !it.OfFunctionCall.ID.Valid() || it.OfFunctionCall.ID.Value == "" {
			it.OfFunctionCall.ID = param.NewOpt(newID("fc_"))
		}
		if it.OfFunctionCall.CallID == "" {
			it.OfFunctionCall.CallID = newID("call_")
		}
	}
}

// tracerName names the tracer of the agent's spans.
const tracerName = "github.com/lakesession/lakesession/examples/agentserver/agent"

func (h *Handler) tracer() trace.Tracer {
	tp := h.TracerProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	return tp.Tracer(tracerName)
}

// respond calls the model in a span "chat <model>".
func (h *Handler) respond(ctx context.Context, tracer trace.Tracer, req Request) ([]Item, error) {
	name := h.Model.Name()
	ctx, span := tracer.Start(ctx, "chat "+name, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(
			attribute.String("gen_ai.operation.name", "chat"),
			attribute.String("gen_ai.request.model", name),
			attribute.Int("gen_ai.agent.tools", len(req.Tools)),
		))
	defer span.End()
	out, err := h.Model.Respond(ctx, req)
	if err == nil && len(out) == 0 {
		err = errors.New("the model returned no output item")
	}
	if err != nil {
		span.SetStatus(codes.Error, "the model call failed")
		span.SetAttributes(attribute.String("error.type", errorType(err)))
		return nil, err
	}
	calls := 0
	for _, it := range out {
		if it.OfFunctionCall != nil {
			calls++
		}
	}
	span.SetAttributes(attribute.Int("gen_ai.response.tool_calls", calls))
	return out, nil
}

// errorType is the error.type of a failed model call: a context error, or
// the Go type of the innermost error ("*openai.Error"), or "_OTHER".
func errorType(err error) string {
	switch {
	case errors.Is(err, context.Canceled):
		return "context.Canceled"
	case errors.Is(err, context.DeadlineExceeded):
		return "context.DeadlineExceeded"
	}
	for {
		next := errors.Unwrap(err)
		if next == nil {
			break
		}
		err = next
	}
	switch t := fmt.Sprintf("%T", err); t {
	case "*errors.errorString", "*fmt.wrapError", "*fmt.wrapErrors", "*errors.joinError":
		return "_OTHER"
	default:
		return t
	}
}

// callTool runs the tool the model called, in a span "execute_tool
// <name>", and returns its output, or the error the model is given instead.
func (h *Handler) callTool(ctx context.Context, tracer trace.Tracer, call *responses.ResponseFunctionToolCallParam) string {
	ctx, span := tracer.Start(ctx, "execute_tool "+clip(call.Name, 64), trace.WithAttributes(
		attribute.String("gen_ai.operation.name", "execute_tool"),
		attribute.String("gen_ai.tool.name", clip(call.Name, 64)),
		attribute.String("gen_ai.tool.call.id", clip(call.CallID, 128)),
	))
	defer span.End()
	tool, ok := findTool(h.Tools, call.Name)
	if !ok {
		span.SetStatus(codes.Error, "no such tool")
		span.SetAttributes(attribute.String("error.type", "unknown_tool"))
		names := make([]string, len(h.Tools))
		for i, t := range h.Tools {
			names[i] = t.Name
		}
		return fmt.Sprintf("error: there is no tool named %q; the tools are: %s", clip(call.Name, 64), strings.Join(names, ", "))
	}
	out, err := tool.Call(ctx, call.Arguments)
	if err != nil {
		// The error goes to the model, not to the log or the span: it may
		// quote the arguments, which are conversation content.
		span.SetStatus(codes.Error, "the tool returned an error")
		span.SetAttributes(attribute.String("error.type", "tool_error"))
		h.logger().Info("tool call failed", "tool", call.Name)
		return "error: " + err.Error()
	}
	return out
}
