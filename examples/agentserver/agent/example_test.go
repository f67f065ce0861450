package agent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/responses"

	"github.com/lakesession/lakesession"
	"github.com/lakesession/lakesession/bunstore"
	"github.com/lakesession/lakesession/bunstore/sqlitedb"
	"github.com/lakesession/lakesession/examples/agentserver/agent"
	"github.com/lakesession/lakesession/openaisession"
)

// The seed conversation over HTTP, on an in-memory SQLite store and the
// offline model.
func ExampleHandler() {
	ctx := context.Background()
	db, err := sqlitedb.Open(sqlitedb.Memory)
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
	srv := httptest.NewServer(&agent.Handler{
		Sessions: func(id string) lakesession.Session { return store.Session(id) },
		Model:    agent.OfflineModel{},
	})
	defer srv.Close()

	sessionID := ""
	for _, text := range []string{"Hello I live in SF!", "What city did I say I live in?"} {
		body := `{"input":[{"role":"user","content":"` + text + `"}]`
		if sessionID != "" {
			body += `,"custom_inputs":{"session_id":"` + sessionID + `"}`
		}
		resp, err := http.Post(srv.URL+"/invocations", "application/json", strings.NewReader(body+"}"))
		if err != nil {
			log.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var out struct {
			Output []struct {
				Content []struct {
					Text string `json:"text"`
				} `json:"content"`
			} `json:"output"`
			CustomOutputs struct {
				SessionID string `json:"session_id"`
			} `json:"custom_outputs"`
		}
		if err := json.Unmarshal(b, &out); err != nil {
			log.Fatal(err)
		}
		sessionID = out.CustomOutputs.SessionID
		fmt.Println(out.Output[0].Content[0].Text)
	}
	items, err := store.Session(sessionID).GetItems(ctx, 0)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(items), "items stored")
	// Output:
	// [offline demo model] Noted: you live in SF. Ask me later which city you said you live in.
	// [offline demo model] You said you live in SF.
	// 4 items stored
}

func ExampleOfflineModel() {
	var items []agent.Item
	for _, raw := range []string{
		`{"role":"user","content":"My name is Ada. I live in London."}`,
		`{"role":"user","content":"Who am I?"}`,
	} {
		it, err := openaisession.Decode(json.RawMessage(raw))
		if err != nil {
			log.Fatal(err)
		}
		items = append(items, it)
	}
	out, err := agent.OfflineModel{}.Respond(context.Background(), agent.Request{Items: items})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(out[0].OfOutputMessage.Content[0].OfOutputText.Text)
	// Output:
	// [offline demo model] You said your name is Ada.
}

// The offline model calls the weather tool, then answers from its output.
func ExampleWeatherTool() {
	ctx := context.Background()
	tools := []agent.Tool{agent.WeatherTool()}
	items := []agent.Item{
		{OfMessage: &responses.EasyInputMessageParam{Role: "user", Content: responses.EasyInputMessageContentUnionParam{OfString: openai.String("I live in Lisbon.")}}},
		{OfMessage: &responses.EasyInputMessageParam{Role: "user", Content: responses.EasyInputMessageContentUnionParam{OfString: openai.String("What's the weather where I live?")}}},
	}
	out, err := agent.OfflineModel{}.Respond(ctx, agent.Request{Items: items, Tools: tools})
	if err != nil {
		log.Fatal(err)
	}
	call := out[0].OfFunctionCall
	fmt.Println(call.Name, call.Arguments)

	// What the handler does with a call: run the tool, add the call and its
	// output to the conversation, and ask the model again.
	output, err := tools[0].Call(ctx, call.Arguments)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(output)
	items = append(items, out[0], agent.Item{OfFunctionCallOutput: &responses.ResponseInputItemFunctionCallOutputParam{
		CallID: openai.String(call.CallID),
		Output: responses.ResponseInputItemFunctionCallOutputOutputUnionParam{OfString: openai.String(output)},
	}})
	out, err = agent.OfflineModel{}.Respond(ctx, agent.Request{Items: items, Tools: tools})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(out[0].OfOutputMessage.Content[0].OfOutputText.Text)
	// Output:
	// get_weather {"city":"Lisbon"}
	// {"city":"Lisbon","sky":"sunny","temperature_c":22,"source":"fixed demo table, not a forecast"}
	// [offline demo model] You said you live in Lisbon. get_weather says: sunny, 22 °C in Lisbon (fixed demo table, not a forecast).
}

func ExampleNewOpenAIModel() {
	// A Databricks model serving endpoint; for OpenAI leave BaseURL empty.
	m, err := agent.NewOpenAIModel(agent.OpenAIConfig{
		BaseURL:      "https://my-workspace.cloud.databricks.com/serving-endpoints",
		APIKey:       "dapi-...",
		Model:        "databricks-claude-sonnet-4",
		Instructions: "You are a helpful assistant.",
	})
	if err != nil {
		log.Fatal(err)
	}
	h := &agent.Handler{Model: m /* , Sessions: ... */}
	_ = h
}
