package openaisession_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/responses"

	"github.com/lakesession/lakesession/bunstore"
	"github.com/lakesession/lakesession/bunstore/sqlitedb"
	"github.com/lakesession/lakesession/openaisession"
)

// An assistant message in the form the Responses API returns it decodes
// into OfOutputMessage, with its id and status, and encodes back to the
// same JSON value; a message without "type" is an easy message.
func ExampleDecode() {
	stored := json.RawMessage(`{"type":"message","id":"msg_1","role":"assistant","status":"completed","content":[{"type":"output_text","text":"You live in SF.","annotations":[]}]}`)
	item, err := openaisession.Decode(stored)
	if err != nil {
		log.Fatal(err)
	}
	msg := item.OfOutputMessage
	fmt.Println(msg.ID, msg.Status, msg.Content[0].OfOutputText.Text)

	raw, err := openaisession.Encode(item)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(raw))

	user, err := openaisession.Decode(json.RawMessage(`{"role":"user","content":"Hello I live in SF!"}`))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(user.OfMessage.Role, user.OfMessage.Content.OfString.Value)
	// Output:
	// msg_1 completed You live in SF.
	// {"id":"msg_1","content":[{"annotations":[],"text":"You live in SF.","type":"output_text"}],"status":"completed","role":"assistant","type":"message"}
	// user Hello I live in SF!
}

// Items built with openai-go's helpers encode to the JSON a Session stores.
func ExampleEncode() {
	raw, err := openaisession.Encode(responses.ResponseInputItemParamOfFunctionCall(`{"city":"SF"}`, "call_1", "get_weather"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(raw))
	// Output:
	// {"arguments":"{\"city\":\"SF\"}","call_id":"call_1","name":"get_weather","type":"function_call"}
}

// A conversation on an SQLite file: each turn stores the user's input and
// the model's output as one batch, and History gives the model a window
// it accepts. The responses are the JSON the API would return, so the
// example runs offline.
func ExampleSession() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "openaisession")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	db, err := sqlitedb.Open(filepath.Join(dir, "sessions.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	store, err := bunstore.New(db)
	if err != nil {
		log.Fatal(err)
	}
	if err := store.CreateTables(ctx); err != nil {
		log.Fatal(err)
	}
	sess := openaisession.New(store.Session("user-789"))

	// Turn 1: the model calls a tool.
	question := responses.ResponseInputItemParamOfMessage("What's the weather in SF?", responses.EasyInputMessageRoleUser)
	call := apiResponse(`[{"id":"rs_1","type":"reasoning","summary":[]},
		{"id":"fc_1","type":"function_call","status":"completed","call_id":"call_1","name":"get_weather","arguments":"{\"city\":\"SF\"}"}]`)
	if err := sess.AddTurn(ctx, []responses.ResponseInputItemUnionParam{question}, call.Output); err != nil {
		log.Fatal(err)
	}
	// Turn 2: the tool's output goes in, the answer comes out.
	toolOutput := responses.ResponseInputItemUnionParam{OfFunctionCallOutput: &responses.ResponseInputItemFunctionCallOutputParam{
		CallID: openai.String("call_1"),
		Output: responses.ResponseInputItemFunctionCallOutputOutputUnionParam{OfString: openai.String("18C and sunny")},
	}}
	answer := apiResponse(`[{"id":"msg_1","type":"message","status":"completed","role":"assistant","content":[{"type":"output_text","text":"It is 18C and sunny in SF.","annotations":[]}]}]`)
	if err := sess.AddTurn(ctx, []responses.ResponseInputItemUnionParam{toolOutput}, answer.Output); err != nil {
		log.Fatal(err)
	}
	// The user's next turn.
	thanks := responses.ResponseInputItemParamOfMessage("Thanks!", responses.EasyInputMessageRoleUser)
	welcome := apiResponse(`[{"id":"msg_2","type":"message","status":"completed","role":"assistant","content":[{"type":"output_text","text":"You're welcome.","annotations":[]}]}]`)
	if err := sess.AddTurn(ctx, []responses.ResponseInputItemUnionParam{thanks}, welcome.Output); err != nil {
		log.Fatal(err)
	}

	// The latest 5 items start with the call, whose reasoning item is
	// older: History leaves out the call, and its output with it.
	for _, limit := range []int{0, 5} {
		history, err := sess.History(ctx, limit)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("History(%d):", limit)
		for _, item := range history {
			typ := "message" // an easy message, stored without "type"
			if t := item.GetType(); t != nil && *t != "" {
				typ = *t
			} else if t == nil {
				typ = "unknown" // a pass-through item (see Session)
			}
			fmt.Print(" ", typ)
		}
		fmt.Println()
	}
	// Output:
	// History(0): message reasoning function_call function_call_output message message message
	// History(5): message message message
}

// A response that calls a tool: its output items go back to the model in
// the turn's next request, before the tool's output, as the input items
// InputItems returns, with every field the API returned.
func ExampleInputItems() {
	resp := apiResponse(`[{"id":"rs_1","type":"reasoning","summary":[],"encrypted_content":"gAAAAABo"},
		{"id":"fc_1","type":"function_call","status":"completed","call_id":"call_1","name":"get_weather","arguments":"{\"city\":\"SF\"}"}]`)
	items, err := openaisession.InputItems(resp.Output)
	if err != nil {
		log.Fatal(err)
	}
	reasoning, call := items[0].OfReasoning, items[1].OfFunctionCall
	fmt.Println(reasoning.ID, reasoning.EncryptedContent.Value)
	fmt.Println(call.ID.Value, call.CallID, call.Name, call.Arguments)
	// Output:
	// rs_1 gAAAAABo
	// fc_1 call_1 get_weather {"city":"SF"}
}

// One model call with openai-go: send History and the new input, store the
// turn with AddTurn. (With tools, see the loop in the package
// documentation.)
func ExampleSession_AddTurn() {
	ctx := context.Background()
	client := openai.NewClient() // OPENAI_API_KEY from the environment
	db, err := sqlitedb.Open("sessions.db")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	store, err := bunstore.New(db)
	if err != nil {
		log.Fatal(err)
	}
	if err := store.CreateTables(ctx); err != nil {
		log.Fatal(err)
	}
	sess := openaisession.New(store.Session("user-789"))

	input := []responses.ResponseInputItemUnionParam{
		responses.ResponseInputItemParamOfMessage("What city did I say I live in?", responses.EasyInputMessageRoleUser),
	}
	history, err := sess.History(ctx, 50)
	if err != nil {
		log.Fatal(err)
	}
	resp, err := client.Responses.New(ctx, responses.ResponseNewParams{
		Model: openai.ChatModelGPT5_4Mini,
		Input: responses.ResponseNewParamsInputUnion{OfInputItemList: append(history, input...)},
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := sess.AddTurn(ctx, input, resp.Output); err != nil {
		log.Fatal(err)
	}
	fmt.Println(resp.OutputText())
}

// apiResponse decodes a response as openai-go does when the API returns it.
func apiResponse(output string) responses.Response {
	var r responses.Response
	body := `{"id":"resp_1","object":"response","created_at":1750000000,"status":"completed","model":"gpt-5","output":` + output + `}`
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		log.Fatal(err)
	}
	return r
}
