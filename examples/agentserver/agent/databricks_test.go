package agent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/databricks/databricks-sdk-go"
	"github.com/openai/openai-go/v3/option"

	"github.com/lakesession/lakesession/examples/agentserver/agent"
)

func TestDatabricksModel(t *testing.T) {
	t.Setenv("DATABRICKS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	var gotAuth, gotPath, gotModel string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth, gotPath = r.Header.Get("Authorization"), r.URL.Path
		var req struct {
			Model string `json:"model"`
		}
		json.NewDecoder(r.Body).Decode(&req)
		gotModel = req.Model
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"id":"c","object":"chat.completion","created":1,"model":"x","choices":[{"index":0,"finish_reason":"stop","message":{"role":"assistant","content":"hello from the endpoint"}}]}`)
	}))
	defer srv.Close()

	w, err := databricks.NewWorkspaceClient(&databricks.Config{Host: srv.URL, Token: "dapi-test-token", AuthType: "pat"})
	if err != nil {
		t.Fatal(err)
	}
	m, err := agent.NewDatabricksModel(agent.DatabricksConfig{
		Workspace: w,
		Endpoint:  "databricks-claude-sonnet-4",
		Options:   []option.RequestOption{option.WithMaxRetries(0)},
	})
	if err != nil {
		t.Fatal(err)
	}
	out, err := m.Respond(context.Background(), agent.Request{Items: []agent.Item{decode(t, `{"role":"user","content":"hi"}`)}})
	if err != nil {
		t.Fatal(err)
	}
	if text := replyText(t, out); text != "hello from the endpoint" || m.Name() != "databricks-claude-sonnet-4" {
		t.Errorf("reply %q from %q", text, m.Name())
	}
	if gotPath != "/serving-endpoints/chat/completions" || gotAuth != "Bearer dapi-test-token" || gotModel != "databricks-claude-sonnet-4" {
		t.Errorf("the endpoint got path %q, Authorization %q, model %q", gotPath, gotAuth, gotModel)
	}

	if _, err := agent.NewDatabricksModel(agent.DatabricksConfig{Workspace: w}); err == nil || !strings.Contains(err.Error(), "DATABRICKS_SERVING_ENDPOINT") {
		t.Errorf("no endpoint: %v", err)
	}
}
