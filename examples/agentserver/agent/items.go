package agent

import (
	"strings"

	"github.com/google/uuid"
	"github.com/openai/openai-go/v3/packages/param"
	"github.com/openai/openai-go/v3/responses"
)

// Item is one Responses-API item of a conversation, as openai-go types it.
type Item = responses.ResponseInputItemUnionParam

// messageText returns the role and the text of a message item: an easy
// message ({"role":...,"content":...}), an input message or an assistant
// output message. Text parts (input_text, output_text, refusal) are joined
// with new lines; other parts are skipped. ok is false for other items.
func messageText(item Item) (role, text string, ok bool) {
	switch {
	case item.OfMessage != nil:
		m := item.OfMessage
		if m.Content.OfString.Valid() {
			return string(m.Role), m.Content.OfString.Value, true
		}
		return string(m.Role), inputText(m.Content.OfInputItemContentList), true
	case item.OfInputMessage != nil:
		return item.OfInputMessage.Role, inputText(item.OfInputMessage.Content), true
	case item.OfOutputMessage != nil:
		var texts []string
		for _, c := range item.OfOutputMessage.Content {
			switch {
			case c.OfOutputText != nil:
				texts = append(texts, c.OfOutputText.Text)
			case c.OfRefusal != nil:
				texts = append(texts, c.OfRefusal.Refusal)
			}
		}
		return "assistant", strings.Join(texts, "\n"), true
	}
	return "", "", false
}

func inputText(parts responses.ResponseInputMessageContentListParam) string {
	var texts []string
	for _, p := range parts {
		if p.OfInputText != nil {
			texts = append(texts, p.OfInputText.Text)
		}
	}
	return strings.Join(texts, "\n")
}

// functionOutputText returns the text of a function call's output: the
// string, or the text parts of a list joined with new lines.
func functionOutputText(o *responses.ResponseInputItemFunctionCallOutputParam) string {
	if o.Output.OfString.Valid() {
		return o.Output.OfString.Value
	}
	var texts []string
	for _, p := range o.Output.OfResponseFunctionCallOutputItemArray {
		if p.OfInputText != nil {
			texts = append(texts, p.OfInputText.Text)
		}
	}
	return strings.Join(texts, "\n")
}

// AssistantMessage returns an assistant output message item holding text,
// as a Model returns its reply. Its id is left for the handler to set.
func AssistantMessage(text string) Item {
	return Item{OfOutputMessage: &responses.ResponseOutputMessageParam{
		Status: responses.ResponseOutputMessageStatusCompleted,
		Content: []responses.ResponseOutputMessageContentUnionParam{{
			OfOutputText: &responses.ResponseOutputTextParam{
				Text:        text,
				Annotations: []responses.ResponseOutputTextAnnotationUnionParam{},
			},
		}},
	}}
}

// FunctionCall returns a function_call item, as a Model returns a call of
// one of its tools: callID pairs it with its output, arguments is a JSON
// object as text. Its id is left for the handler to set.
func FunctionCall(callID, name, arguments string) Item {
	return Item{OfFunctionCall: &responses.ResponseFunctionToolCallParam{
		CallID:    callID,
		Name:      name,
		Arguments: arguments,
		Status:    responses.ResponseFunctionToolCallStatusCompleted,
	}}
}

// functionCallOutput returns the function_call_output item that answers
// the call callID with output.
func functionCallOutput(callID, output string) Item {
	return Item{OfFunctionCallOutput: &responses.ResponseInputItemFunctionCallOutputParam{
		CallID: param.NewOpt(callID),
		Output: responses.ResponseInputItemFunctionCallOutputOutputUnionParam{OfString: param.NewOpt(output)},
	}}
}

// newID returns a new identifier with the given prefix, such as "msg_".
func newID(prefix string) string {
	u := uuid.New()
	return prefix + strings.ReplaceAll(u.String(), "-", "")
}
