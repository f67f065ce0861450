package agent

import (
	"encoding/json"
	"strings"

	"github.com/google/uuid"
)

// message is the part of a Responses-API item that the models here read:
// messages (with or without "type":"message"), function calls and their
// outputs. Other fields and item types are left alone.
type message struct {
	Type      string          `json:"type"`
	Role      string          `json:"role"`
	Content   json.RawMessage `json:"content"`
	CallID    string          `json:"call_id"`
	Name      string          `json:"name"`
	Arguments string          `json:"arguments"`
	Output    json.RawMessage `json:"output"`
}

// parseMessage decodes item. An item it cannot decode reads as an item of an
// unknown type, which the models skip.
func parseMessage(item json.RawMessage) message {
	var m message
	if err := json.Unmarshal(item, &m); err != nil {
		return message{Type: "unknown"}
	}
	return m
}

// isMessage reports whether m is a message: the easy form
// {"role":...,"content":...} or {"type":"message",...}.
func (m message) isMessage() bool {
	return (m.Type == "" || m.Type == "message") && m.Role != ""
}

// text returns the text of a message's content, which is either a string or
// an array of content parts (input_text, output_text, text, refusal); parts
// are joined with new lines and parts without text are skipped.
func (m message) text() string {
	return contentText(m.Content)
}

func contentText(content json.RawMessage) string {
	if len(content) == 0 {
		return ""
	}
	var s string
	if err := json.Unmarshal(content, &s); err == nil {
		return s
	}
	var parts []struct {
		Type    string `json:"type"`
		Text    string `json:"text"`
		Refusal string `json:"refusal"`
	}
	if err := json.Unmarshal(content, &parts); err != nil {
		return ""
	}
	var texts []string
	for _, p := range parts {
		switch p.Type {
		case "input_text", "output_text", "text":
			texts = append(texts, p.Text)
		case "refusal":
			texts = append(texts, p.Refusal)
		}
	}
	return strings.Join(texts, "\n")
}

// outputMessage is an assistant message in the Responses-API output form. It
// is also a valid input item, so it is stored as it is sent.
type outputMessage struct {
	Type    string       `json:"type"`
	ID      string       `json:"id"`
	Role    string       `json:"role"`
	Status  string       `json:"status"`
	Content []outputText `json:"content"`
}

type outputText struct {
	Type        string            `json:"type"`
	Text        string            `json:"text"`
	Annotations []json.RawMessage `json:"annotations"`
}

func newOutputMessage(id, text, status string) outputMessage {
	content := []outputText{}
	if status == "completed" {
		content = append(content, newOutputText(text))
	}
	return outputMessage{Type: "message", ID: id, Role: "assistant", Status: status, Content: content}
}

func newOutputText(text string) outputText {
	return outputText{Type: "output_text", Text: text, Annotations: []json.RawMessage{}}
}

// newID returns a new identifier with the given prefix, such as "msg_".
func newID(prefix string) string {
	u := uuid.New()
	return prefix + strings.ReplaceAll(u.String(), "-", "")
}
