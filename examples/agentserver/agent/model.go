package agent

import "context"

// Model produces the assistant's output items for a conversation.
type Model interface {
	// Name names the model in responses.
	Name() string

	// Respond returns the model's next output items for req.Items, in
	// order: calls of req.Tools (FunctionCall items), which the handler
	// runs and answers with function_call_output items before calling
	// Respond again, and at most one assistant message (AssistantMessage),
	// which ends the turn when no call comes with it. Ids left empty are
	// set by the handler.
	//
	// When req.OnDelta is not nil, Respond calls it with each piece of the
	// assistant message's text as it is produced, in order; the pieces add
	// up to the message's text. An error from OnDelta stops the reply and
	// is returned.
	Respond(ctx context.Context, req Request) ([]Item, error)
}

// Request is what a Model is asked to respond to.
type Request struct {
	// Items is the conversation so far, oldest first: the session's
	// history window, the turn's input items, and the calls and outputs of
	// the turn so far. It never holds a tool output without its call, nor
	// a call without its output.
	Items []Item

	// Tools are the tools the model may call; none when empty.
	Tools []Tool

	// OnDelta, when not nil, receives the assistant message's text as it
	// is produced.
	OnDelta func(string) error
}
