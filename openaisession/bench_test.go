package openaisession_test

// Benchmarks of the typed layer:
//
//   - BenchmarkDecodeEncode: Decode and Encode of a realistic 20-item history
//     (easy and output messages, reasoning with encrypted content, function
//     calls and their outputs), beside openai-go's own json.Unmarshal and
//     json.Marshal of the union, which loses data. An op is the whole
//     history; ns/item and allocs/item are per item (ns/op and allocs/op
//     over 20);
//   - BenchmarkHistoryPostgres: History(20) against GetItems(20) of the
//     store underneath (and the typed GetItems(20)) on PostgreSQL, the calls
//     interleaved one by one in one run so that they share the load; an op
//     is one call of one of the three, so allocs/op is their mean.
//
// Run them with a PostgreSQL (from the repository root):
//
//	./scripts/with-postgres.sh sh -c 'cd openaisession && go test -run "^$" -bench . -benchmem'

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3/responses"

	"github.com/lakesession/lakesession/openaisession"
)

// benchHistory returns a history of 20 items as the Responses API and the
// Agents SDKs store them: two turns with a tool call, two without, and a
// last question and answer.
func benchHistory() []json.RawMessage {
	text := func(n int, what string) string {
		return fmt.Sprintf("%s %d: %s", what, n, strings.Repeat("The weather in San Francisco is mild, with fog in the morning. ", 4))
	}
	encrypted := strings.Repeat("gAAAAABo", 100) // 800 bytes, as with store=false
	var items []string
	user := func(n int) {
		items = append(items, fmt.Sprintf(`{"role":"user","content":%q}`, text(n, "question")))
	}
	reasoning := func(n int) {
		items = append(items, fmt.Sprintf(`{"id":"rs_%d","type":"reasoning","summary":[{"type":"summary_text","text":%q}],"encrypted_content":%q}`, n, text(n, "thinking"), encrypted))
	}
	answer := func(n int) {
		items = append(items, fmt.Sprintf(`{"id":"msg_%d","type":"message","status":"completed","content":[{"type":"output_text","annotations":[],"logprobs":[],"text":%q}],"role":"assistant"}`, n, text(n, "answer")))
	}
	for n := range 2 {
		user(n)
		reasoning(n)
		items = append(items,
			fmt.Sprintf(`{"id":"fc_%d","type":"function_call","status":"completed","arguments":"{\"city\":\"San Francisco\",\"unit\":\"celsius\"}","call_id":"call_%d","name":"get_weather"}`, n, n),
			fmt.Sprintf(`{"type":"function_call_output","call_id":"call_%d","output":"{\"temperature\":18,\"conditions\":\"fog, then sun\"}"}`, n))
		reasoning(n + 10)
		answer(n)
	}
	for n := 2; n < 4; n++ {
		user(n)
		reasoning(n)
		answer(n)
	}
	user(4)
	answer(4)
	out := make([]json.RawMessage, len(items))
	for i, s := range items {
		out[i] = json.RawMessage(s)
	}
	return out
}

func BenchmarkDecodeEncode(b *testing.B) {
	history := benchHistory()
	if len(history) != 20 {
		b.Fatalf("the history has %d items", len(history))
	}
	b.Run("Decode+Encode", func(b *testing.B) {
		benchPerItem(b, len(history), func() {
			for _, raw := range history {
				it, err := openaisession.Decode(raw)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := openaisession.Encode(it); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	b.Run("Decode", func(b *testing.B) {
		benchPerItem(b, len(history), func() {
			for _, raw := range history {
				if _, err := openaisession.Decode(raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	b.Run("Encode", func(b *testing.B) {
		items := make([]responses.ResponseInputItemUnionParam, len(history))
		for i, raw := range history {
			items[i], _ = openaisession.Decode(raw)
		}
		benchPerItem(b, len(history), func() {
			for _, it := range items {
				if _, err := openaisession.Encode(it); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	// openai-go's own round trip, for scale: it fails on messages without
	// "type" (those items are skipped here) and drops the id and status of
	// output messages.
	b.Run("openai-go-Unmarshal+Marshal", func(b *testing.B) {
		benchPerItem(b, len(history), func() {
			for _, raw := range history {
				var it responses.ResponseInputItemUnionParam
				if err := json.Unmarshal(raw, &it); err != nil {
					continue
				}
				if _, err := json.Marshal(it); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}

// benchPerItem runs f, which handles n items, b.N times, and reports the
// time and the allocations per item.
func benchPerItem(b *testing.B, n int, f func()) {
	b.ReportAllocs()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	for b.Loop() {
		f()
	}
	elapsed := time.Since(start)
	runtime.ReadMemStats(&after)
	items := float64(b.N * n)
	b.ReportMetric(float64(elapsed.Nanoseconds())/items, "ns/item")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/items, "allocs/item")
}

// BenchmarkHistoryPostgres compares, on one 100-item session, History(20)
// with GetItems(20) of the store it wraps and with the typed GetItems(20),
// calling them in turn and reporting each one's mean time per call
// ("<arm>-ns/op") and History's time over the store's
// ("history/store-ratio").
func BenchmarkHistoryPostgres(b *testing.B) {
	ctx := context.Background()
	st := postgresStore(b)
	raw := st.Session("bench-history")
	var all []json.RawMessage
	for range 5 {
		all = append(all, benchHistory()...)
	}
	if err := raw.AddItems(ctx, all); err != nil {
		b.Fatal(err)
	}
	typed := openaisession.New(raw)
	arms := []struct {
		name string
		call func() (int, error)
	}{
		{"store-GetItems", func() (int, error) { items, err := raw.GetItems(ctx, 20); return len(items), err }},
		{"typed-GetItems", func() (int, error) { items, err := typed.GetItems(ctx, 20); return len(items), err }},
		{"History", func() (int, error) { items, err := typed.History(ctx, 20); return len(items), err }},
	}
	total := make([]time.Duration, len(arms))
	calls := make([]int, len(arms))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		k := i % len(arms)
		i++
		start := time.Now()
		n, err := arms[k].call()
		total[k] += time.Since(start)
		calls[k]++
		if err != nil {
			b.Fatalf("%s: %v", arms[k].name, err)
		}
		if n != 20 {
			b.Fatalf("%s returned %d items, want 20", arms[k].name, n)
		}
	}
	mean := make([]float64, len(arms))
	for k, a := range arms {
		if calls[k] > 0 {
			mean[k] = float64(total[k].Nanoseconds()) / float64(calls[k])
			b.ReportMetric(mean[k], a.name+"-ns/op")
		}
	}
	if mean[0] > 0 {
		b.ReportMetric(mean[2]/mean[0], "history/store-ratio")
	}
}
