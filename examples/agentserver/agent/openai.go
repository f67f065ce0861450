package agent

import (
	"context"
	"errors"
	"fmt"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"
)

// OpenAIModel answers through the Chat Completions API of any
// OpenAI-compatible endpoint: OpenAI itself, a Databricks model serving
// endpoint (base URL https://<workspace-host>/serving-endpoints, a Databricks
// token as the API key, the serving endpoint's name as the model), vLLM,
// Ollama and the like. Chat Completions is what every one of them serves.
//
// The conversation's items are sent as chat messages: messages keep their
// role and their text, function calls become the tool calls of an assistant
// message and their outputs tool messages; other item types, and content
// that is not text, are left out. The tools of the request are offered as
// function tools, and the tool calls of the completion come back as
// function_call items (after the assistant's text, when it has any).
type OpenAIModel struct {
	client       openai.Client
	model        string
	instructions string
}

var _ Model = (*OpenAIModel)(nil)

// OpenAIConfig configures an OpenAIModel.
type OpenAIConfig struct {
	// BaseURL is the API's base URL, such as https://api.openai.com/v1/ or
	// https://<workspace-host>/serving-endpoints; empty means OpenAI's.
	BaseURL string
	// APIKey is sent as the bearer token.
	APIKey string
	// Model names the model or serving endpoint; required.
	Model string
	// Instructions, when not empty, are sent first as a system message.
	Instructions string
	// Options are passed on to the openai-go client, after the above.
	Options []option.RequestOption
}

// NewOpenAIModel returns a model that calls the endpoint cfg describes.
func NewOpenAIModel(cfg OpenAIConfig) (*OpenAIModel, error) {
	if cfg.Model == "" {
		return nil, errors.New("agent: no model name; set OPENAI_MODEL to the model or serving endpoint name")
	}
	var opts []option.RequestOption
	if cfg.BaseURL != "" {
		opts = append(opts, option.WithBaseURL(cfg.BaseURL))
	}
	if cfg.APIKey != "" {
		opts = append(opts, option.WithAPIKey(cfg.APIKey))
	}
	opts = append(opts, cfg.Options...)
	return &OpenAIModel{
		client:       openai.NewClient(opts...),
		model:        cfg.Model,
		instructions: cfg.Instructions,
	}, nil
}

// Name implements Model.
func (m *OpenAIModel) Name() string { return m.model }

// Respond implements Model. It streams the completion when req.OnDelta is
// not nil.
func (m *OpenAIModel) Respond(ctx context.Context, req Request) ([]Item, error) {
	params := openai.ChatCompletionNewParams{
		Model:    m.model,
		Messages: chatMessages(m.instructions, req.Items),
	}
	for _, t := range req.Tools {
		fn := shared.FunctionDefinitionParam{Name: t.Name, Parameters: shared.FunctionParameters(t.Parameters)}
		if t.Description != "" {
			fn.Description = openai.String(t.Description)
		}
		params.Tools = append(params.Tools, openai.ChatCompletionFunctionTool(fn))
	}
	if req.OnDelta == nil {
		c, err := m.client.Chat.Completions.New(ctx, params)
		if err != nil {
			return nil, fmt.Errorf("chat completion: %w", err)
		}
		if len(c.Choices) == 0 {
			return nil, errors.New("chat completion: the endpoint returned no choices")
		}
		return completionItems(c.Choices[0].Message), nil
	}

	stream := m.client.Chat.Completions.NewStreaming(ctx, params)
	defer stream.Close()
	var acc openai.ChatCompletionAccumulator
	for stream.Next() {
		chunk := stream.Current()
		acc.AddChunk(chunk)
		if len(chunk.Choices) == 0 {
			continue
		}
		d := chunk.Choices[0].Delta
		piece := d.Content
		if piece == "" {
			piece = d.Refusal
		}
		if piece == "" {
			continue
		}
		if err := req.OnDelta(piece); err != nil {
			return nil, err
		}
	}
	if err := stream.Err(); err != nil {
		return nil, fmt.Errorf("chat completion stream: %w", err)
	}
	if len(acc.Choices) == 0 {
		return nil, errors.New("chat completion stream: the endpoint returned no choices")
	}
	return completionItems(acc.Choices[0].Message), nil
}

// completionItems returns the items of a completion's message: the
// assistant's text (or refusal), when it has any or calls no tool, then a
// function_call item per function tool call.
func completionItems(msg openai.ChatCompletionMessage) []Item {
	text := msg.Content
	if text == "" {
		text = msg.Refusal
	}
	var items []Item
	var calls []Item
	for _, tc := range msg.ToolCalls {
		if tc.Type == "function" || tc.Type == "" {
			calls = append(calls, FunctionCall(tc.ID, tc.Function.Name, tc.Function.Arguments))
		}
	}
	if text != "" || len(calls) == 0 {
		items = append(items, AssistantMessage(text))
	}
	return append(items, calls...)
}

// chatMessages converts Responses-API items into chat messages.
func chatMessages(instructions string, items []Item) []openai.ChatCompletionMessageParamUnion {
	var msgs []openai.ChatCompletionMessageParamUnion
	if instructions != "" {
		msgs = append(msgs, openai.SystemMessage(instructions))
	}
	// prev says that the item before was an assistant message or a call:
	// the calls of one model response, and the text before them, are one
	// assistant message in chat completions.
	prev := false
	for _, it := range items {
		switch {
		case it.OfFunctionCall != nil:
			call := openai.ChatCompletionMessageToolCallUnionParam{
				OfFunction: &openai.ChatCompletionMessageFunctionToolCallParam{
					ID: it.OfFunctionCall.CallID,
					Function: openai.ChatCompletionMessageFunctionToolCallFunctionParam{
						Name: it.OfFunctionCall.Name, Arguments: it.OfFunctionCall.Arguments,
					},
				},
			}
			if n := len(msgs); prev && msgs[n-1].OfAssistant != nil {
				msgs[n-1].OfAssistant.ToolCalls = append(msgs[n-1].OfAssistant.ToolCalls, call)
				continue
			}
			msgs = append(msgs, openai.ChatCompletionMessageParamUnion{
				OfAssistant: &openai.ChatCompletionAssistantMessageParam{
					ToolCalls: []openai.ChatCompletionMessageToolCallUnionParam{call},
				},
			})
			prev = true
			continue
		case it.OfFunctionCallOutput != nil:
			o := it.OfFunctionCallOutput
			msgs = append(msgs, openai.ToolMessage(functionOutputText(o), o.CallID.Value))
		default:
			role, text, ok := messageText(it)
			if !ok {
				break
			}
			switch role {
			case "user":
				msgs = append(msgs, openai.UserMessage(text))
			case "assistant":
				msgs = append(msgs, openai.AssistantMessage(text))
				prev = true
				continue
			case "system":
				msgs = append(msgs, openai.SystemMessage(text))
			case "developer":
				msgs = append(msgs, openai.DeveloperMessage(text))
			}
		}
		prev = false
	}
	return msgs
}
