package agent

import (
	"errors"
	"net/http"
	"strings"

	"github.com/databricks/databricks-sdk-go"
	"github.com/openai/openai-go/v3/option"
)

// DatabricksConfig configures a model behind a Databricks model serving
// endpoint.
type DatabricksConfig struct {
	// Workspace authenticates the calls, with whichever method the SDK
	// found: a token, OAuth machine-to-machine (as in Databricks Apps), a
	// CLI profile, ...
	Workspace *databricks.WorkspaceClient
	// Endpoint is the serving endpoint's name, such as
	// databricks-claude-sonnet-4; required.
	Endpoint string
	// Instructions, when not empty, are sent first as a system message.
	Instructions string
	// Options are passed on to the openai-go client.
	Options []option.RequestOption
}

// NewDatabricksModel returns a model that calls a Databricks model serving
// endpoint through its OpenAI-compatible chat completions API
// (https://<workspace-host>/serving-endpoints), each request authenticated
// as cfg.Workspace is. It is the OpenAIModel with the base URL and the
// credentials taken from the Databricks SDK, so that no token needs to be
// copied into OPENAI_API_KEY.
func NewDatabricksModel(cfg DatabricksConfig) (*OpenAIModel, error) {
	if cfg.Endpoint == "" {
		return nil, errors.New("agent: no serving endpoint; set DATABRICKS_SERVING_ENDPOINT to its name")
	}
	if cfg.Workspace == nil || cfg.Workspace.Config == nil {
		return nil, errors.New("agent: no Databricks workspace client")
	}
	dc := cfg.Workspace.Config
	host := strings.TrimSuffix(dc.CanonicalHostName(), "/")
	if host == "" {
		return nil, errors.New("agent: the Databricks workspace client has no host; set DATABRICKS_HOST")
	}
	auth := func(req *http.Request, next option.MiddlewareNext) (*http.Response, error) {
		if err := dc.Authenticate(req); err != nil {
			return nil, err
		}
		return next(req)
	}
	return NewOpenAIModel(OpenAIConfig{
		BaseURL:      host + "/serving-endpoints/",
		Model:        cfg.Endpoint,
		Instructions: cfg.Instructions,
		Options:      append([]option.RequestOption{option.WithMiddleware(auth)}, cfg.Options...),
	})
}
