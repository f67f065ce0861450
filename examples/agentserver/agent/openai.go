package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// OpenAIModel answers through the Chat Completions API of any
// OpenAI-compatible endpoint: OpenAI itself, a Databricks model serving
// endpoint (base URL https://<workspace-host>/serving-endpoints, a Databricks
// token as the API key, the serving endpoint's name as the model), vLLM,
// Ollama and the like.
//
// The conversation's items are sent as chat messages: messages keep their
// role and their text, function calls (from an agent with tools sharing the
// session) become assistant tool calls and their outputs tool messages;
// other item types, and content that is not text, are left out.
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

// Reply implements Model. It streams the completion when onDelta is not nil.
func (m *OpenAIModel) Reply(ctx context.Context, items []json.RawMessage, onDelta func(string) error) (string, error) {
	params := openai.ChatCompletionNewParams{
		Model:    m.model,
		Messages: chatMessages(m.instructions, items),
	}
	if onDelta == nil {
		c, err := m.client.Chat.Completions.New(ctx, params)
		if err != nil {
			return "", fmt.Errorf("chat completion: %w", err)
		}
		if len(c.Choices) == 0 {
			return "", errors.New("chat completion: the endpoint returned no choices")
		}
		msg := c.Choices[0].Message
		if msg.Content == "" && msg.Refusal != "" {
			return msg.Refusal, nil
		}
		return msg.Content, nil
	}

	stream := m.client.Chat.Completions.NewStreaming(ctx, params)
	defer stream.Close()
	var text []byte
	for stream.Next() {
		chunk := stream.Current()
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
		text = append(text, piece...)
		if err := onDelta(piece); err != nil {
			return "", err
		}
	}
	if err := stream.Err(); err != nil {
		return "", fmt.Errorf("chat completion stream: %w", err)
	}
	return string(text), nil
}

// chatMessages converts Responses-API items into chat messages.
func chatMessages(instructions string, items []json.RawMessage) []openai.ChatCompletionMessageParamUnion {
	var msgs []openai.ChatCompletionMessageParamUnion
	if instructions != "" {
		msgs = append(msgs, openai.SystemMessage(instructions))
	}
	// pending collects consecutive function calls into one assistant
	// message, as chat completions expect.
	var pending []openai.ChatCompletionMessageToolCallUnionParam
	flush := func() {
		if len(pending) > 0 {
			msgs = append(msgs, openai.ChatCompletionMessageParamUnion{
				OfAssistant: &openai.ChatCompletionAssistantMessageParam{ToolCalls: pending},
			})
			pending = nil
		}
	}
	// A history window (Handler.HistoryLimit) may cut a function call from
	// its output; chat completions refuse either half alone, so both are
	// left out then.
	parsed := make([]message, len(items))
	calls, outputs := map[string]bool{}, map[string]bool{}
	for i, raw := range items {
		parsed[i] = parseMessage(raw)
		switch parsed[i].Type {
		case "function_call":
			calls[parsed[i].CallID] = true
		case "function_call_output":
			outputs[parsed[i].CallID] = true
		}
	}
	for _, m := range parsed {
		switch {
		case m.Type == "function_call" && !outputs[m.CallID],
			m.Type == "function_call_output" && !calls[m.CallID]:
			continue
		case m.Type == "function_call":
			pending = append(pending, openai.ChatCompletionMessageToolCallUnionParam{
				OfFunction: &openai.ChatCompletionMessageFunctionToolCallParam{
					ID: m.CallID,
					Function: openai.ChatCompletionMessageFunctionToolCallFunctionParam{
						Name: m.Name, Arguments: m.Arguments,
					},
				},
			})
			continue
		case m.Type == "function_call_output":
			flush()
			msgs = append(msgs, openai.ToolMessage(functionOutputText(m.Output), m.CallID))
		case m.isMessage():
			flush()
			text := m.text()
			switch m.Role {
			case "user":
				msgs = append(msgs, openai.UserMessage(text))
			case "assistant":
				msgs = append(msgs, openai.AssistantMessage(text))
			case "system":
				msgs = append(msgs, openai.SystemMessage(text))
			case "developer":
				msgs = append(msgs, openai.DeveloperMessage(text))
			}
		}
	}
	flush()
	return msgs
}

// functionOutputText returns the text of a function call's output, which is
// a string or an array of content parts.
func functionOutputText(output json.RawMessage) string {
	var s string
	if err := json.Unmarshal(output, &s); err == nil {
		return s
	}
	if t := contentText(output); t != "" {
		return t
	}
	return string(output)
}
