// Package openaisession keeps conversation histories of openai-go agents in a
// lakesession store, as typed items: responses.ResponseInputItemUnionParam of
// github.com/openai/openai-go/v3.
//
// It is a module of its own (github.com/lakesession/lakesession/openaisession),
// so that users of the store who do not use openai-go do not download it.
// Items are stored as the JSON the Responses API takes, the same rows a
// Python agent (openai-agents SQLAlchemySession) reads and writes.
//
// # Typed items
//
// Decode turns a stored item into the variant of
// ResponseInputItemUnionParam it is, and Encode turns it back into JSON.
// The round trip is lossless for every variant: Encode(Decode(raw)) is the
// same JSON value as raw, with fields openai-go does not know, nulls and
// numbers as they were. Assistant messages in the form the API returns them
// ("type":"message" with an "id" and a content list) decode into
// OfOutputMessage, so their id and status are kept; messages without "type"
// decode into OfMessage.
//
//	item, err := openaisession.Decode(raw)
//	if err != nil {
//		return err // wraps lakesession.ErrInvalidItem, and says what is wrong
//	}
//	if m := item.OfOutputMessage; m != nil {
//		fmt.Println(m.ID, m.Status)
//	}
//	raw, err = openaisession.Encode(item)
//
// # An agent loop with openai-go
//
// New wraps any lakesession.Session. History returns what to send to the
// model at the start of a user turn: the latest items of the session,
// without those that would make the Responses API reject the list (see
// lakesession.RepairHistory). AddTurn stores a step of the turn, its new
// input and the response's output items exactly as the API returned them,
// in one batch. Within the turn, the requests that follow send the history,
// then the turn's items so far, kept in memory: its input, each response's
// output items (InputItems turns them into input items) and the tools'
// outputs.
//
//	store, err := bunstore.New(db) // PostgreSQL, Lakebase or SQLite
//	if err != nil {
//		return err
//	}
//	sess := openaisession.New(store.Session(sessionID))
//
//	history, err := sess.History(ctx, 50) // once per user turn
//	if err != nil {
//		return err
//	}
//	conversation := history
//	input := []responses.ResponseInputItemUnionParam{
//		responses.ResponseInputItemParamOfMessage(question, responses.EasyInputMessageRoleUser),
//	}
//	for len(input) > 0 {
//		conversation = append(conversation, input...)
//		resp, err := client.Responses.New(ctx, responses.ResponseNewParams{
//			Model: openai.ChatModelGPT5_4Mini,
//			Input: responses.ResponseNewParamsInputUnion{OfInputItemList: conversation},
//			Tools: tools,
//		})
//		if err != nil {
//			return err
//		}
//		if err := sess.AddTurn(ctx, input, resp.Output); err != nil {
//			return err
//		}
//		output, err := openaisession.InputItems(resp.Output)
//		if err != nil {
//			return err
//		}
//		conversation = append(conversation, output...)
//		input = runTools(resp.Output) // the function_call_output items of its calls; none ends the turn
//	}
//
// Do not call History again in the middle of a turn: the call a response
// just made is then the newest stored item, without its output, and History
// leaves it out, so the request that sends its output would be rejected.
// History(limit) returns at most limit items: a pair the window cut is
// dropped, never half-sent, and so are the calls or answer a window starts
// with when their response began with a reasoning item before the window
// (a reasoning model's call or answer is rejected without the reasoning
// item it came with). Choose a limit that holds several turns.
//
// # With openai-agents-go
//
// Session has the methods of memory.Session of
// github.com/nlpodyssey/openai-agents-go (SessionID, GetItems, AddItems,
// PopItem, ClearSession), so its Runner can keep its history in the store
// as it is:
//
//	sess := openaisession.New(store.Session(sessionID))
//	runner := agents.Runner{Config: agents.RunConfig{Session: sess}}
//	result, err := runner.Run(ctx, agent, "What city did I say I live in?")
//	if err != nil {
//		return err
//	}
//	fmt.Println(result.FinalOutput)
//
// GetItems returns the stored items as they are; History is the repaired
// window.
//
// # Items openai-go does not know
//
// Decode refuses an item whose type the pinned openai-go does not know,
// with an error that wraps ErrUnknownType. The Session's reads never do:
// such an item, and any stored item Decode refuses, comes back as a
// pass-through item (no Of field set) that openai-go sends, and Encode and
// AddItems store, as the JSON it was stored as. A history written by a newer
// agent keeps working, and nothing is lost when it is read, popped or copied.
//
// # Errors
//
// Items that cannot be decoded, encoded or stored get errors that wrap
// lakesession.ErrInvalidItem and say which item and what is wrong, never
// what the item holds; a batch with such an item writes nothing. Storage
// errors are those of the lakesession.Session underneath.
package openaisession
