package main_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/uptrace/bun"

	"github.com/lakesession/lakesession/bunstore"
)

// seedBatches are batches of items whose bytes an export and import must
// keep: unicode escapes and raw UTF-8, HTML characters, escaped slashes and
// line breaks, numbers in several spellings, keys out of order, a large
// item. Each inner slice is one AddItems batch.
var seedBatches = map[string][][]string{
	"s-alpha": {
		{
			`{"role":"user","content":"Hello I live in SF!"}`,
			`{"type":"message","role":"assistant","content":[{"type":"output_text","text":"caf\u00e9 <b>&amp;</b> \u2028 line\nbreak \"q\" \\ \/"}],"status":"completed","id":"msg_1"}`,
		},
		{
			`{"z":1,"a":[1.50,2e10,-0,1E-7],"n":null,"t":true,"nested":{"k":{}}}`,
			`{"type":"function_call","name":"get_weather","arguments":"{\"city\":\"SF\"}","call_id":"c1"}`,
		},
	},
	"s-beta": {
		{
			`{"type":"function_call_output","call_id":"c1","output":"😀 raw utf-8 ✓"}`,
			`{"role":"tool","content":"` + strings.Repeat("0123456789", 20000) + `"}`,
		},
	},
	`s "quoted" <id> ✓`: {
		{`{"role":"user","content":"what city?"}`},
		{`{"role":"assistant","content":"SF"}`},
	},
}

// seedOrder is the order seed writes the sessions in: the last is the most
// recently updated.
var seedOrder = []string{"s-beta", `s "quoted" <id> ✓`, "s-alpha"}

// seed stores seedBatches through the library.
func seed(t *testing.T, db *bun.DB) {
	t.Helper()
	store, err := bunstore.New(db)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, id := range seedOrder {
		for _, b := range seedBatches[id] {
			items := make([]json.RawMessage, len(b))
			for i, s := range b {
				items[i] = json.RawMessage(s)
			}
			if err := store.Session(id).AddItems(ctx, items); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// seedCount is the number of items of seedBatches.
func seedCount(id string) int {
	n := 0
	for _, b := range seedBatches[id] {
		n += len(b)
	}
	return n
}
