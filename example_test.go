package lakesession_test

import (
	"encoding/json"
	"fmt"

	"github.com/lakesession/lakesession"
)

// The latest four items of a history cut a tool call from its output:
// sent as they are, the Responses API would reject the list. RepairHistory
// drops the output whose call is outside the window, and the reasoning item
// whose call has no output in it; the rest is sent unchanged.
func ExampleRepairHistory() {
	window := []json.RawMessage{ // as GetItems(ctx, 4) returns them
		json.RawMessage(`{"type":"function_call_output","call_id":"call_1","output":"18C, sunny"}`),
		json.RawMessage(`{"type":"message","id":"msg_1","role":"assistant","status":"completed","content":[{"type":"output_text","text":"It is sunny in SF.","annotations":[]}]}`),
		json.RawMessage(`{"role":"user","content":"And tomorrow?"}`),
		json.RawMessage(`{"type":"reasoning","id":"rs_2","summary":[]}`),
	}
	for _, item := range lakesession.RepairHistory(window) {
		fmt.Println(string(item))
	}
	// Output:
	// {"type":"message","id":"msg_1","role":"assistant","status":"completed","content":[{"type":"output_text","text":"It is sunny in SF.","annotations":[]}]}
	// {"role":"user","content":"And tomorrow?"}
}
