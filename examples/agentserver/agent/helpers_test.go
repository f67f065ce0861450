package agent_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/lakesession/lakesession/examples/agentserver/agent"
	"github.com/lakesession/lakesession/openaisession"
)

// decode returns the typed item of raw JSON.
func decode(t *testing.T, raw string) agent.Item {
	t.Helper()
	it, err := openaisession.Decode(json.RawMessage(raw))
	if err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	return it
}

// decodeAll returns the typed items of raw JSON items.
func decodeAll(t *testing.T, raws ...json.RawMessage) []agent.Item {
	t.Helper()
	items := make([]agent.Item, len(raws))
	for i, r := range raws {
		items[i] = decode(t, string(r))
	}
	return items
}

// encode returns the JSON of an item.
func encode(t *testing.T, it agent.Item) string {
	t.Helper()
	raw, err := openaisession.Encode(it)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	return string(raw)
}

// replyText returns the text of the output's assistant message, failing t
// unless the output is exactly one assistant message with one output_text.
func replyText(t *testing.T, out []agent.Item) string {
	t.Helper()
	if len(out) != 1 || out[0].OfOutputMessage == nil {
		var raws []string
		for _, it := range out {
			raws = append(raws, encode(t, it))
		}
		t.Fatalf("the output is not one assistant message: [%s]", strings.Join(raws, ", "))
	}
	m := out[0].OfOutputMessage
	if len(m.Content) != 1 || m.Content[0].OfOutputText == nil {
		t.Fatalf("the assistant message is not one output_text: %s", encode(t, out[0]))
	}
	return m.Content[0].OfOutputText.Text
}
