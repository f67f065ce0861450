package agent

import (
	"context"
	"errors"
	"fmt"
	"regexp"
)

// Tool is a function the model may call during a turn. The handler offers
// every tool of Handler.Tools to the model, runs the calls the model makes,
// and gives the model their outputs before asking it again.
type Tool struct {
	// Name is how the model calls the tool: letters, digits, underscores
	// and dashes, at most 64 of them, such as get_weather.
	Name string
	// Description tells the model what the tool does and when to use it.
	Description string
	// Parameters is the JSON Schema of the arguments object, such as
	//
	//	{"type": "object",
	//	 "properties": {"city": {"type": "string"}},
	//	 "required": ["city"]}
	Parameters map[string]any
	// Call runs the tool with the arguments the model sent, a JSON object
	// as text, and returns the output given back to the model. An error is
	// given to the model as the output "error: " + err.Error(), so its
	// message should say what to send instead; it does not fail the turn.
	Call func(ctx context.Context, arguments string) (string, error)
}

var toolNameRE = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)

// validateTools reports every problem of tools at once.
func validateTools(tools []Tool) error {
	var errs []error
	seen := map[string]bool{}
	for i, t := range tools {
		switch {
		case !toolNameRE.MatchString(t.Name):
			errs = append(errs, fmt.Errorf("agent: Tools[%d]: name %q: use 1 to 64 letters, digits, underscores or dashes", i, t.Name))
		case seen[t.Name]:
			errs = append(errs, fmt.Errorf("agent: Tools[%d]: a second tool named %q: tool names must be distinct", i, t.Name))
		}
		seen[t.Name] = true
		if t.Call == nil {
			errs = append(errs, fmt.Errorf("agent: Tools[%d] (%s): Call is nil", i, t.Name))
		}
	}
	return errors.Join(errs...)
}

// findTool returns the tool of tools named name.
func findTool(tools []Tool, name string) (Tool, bool) {
	for _, t := range tools {
		if t.Name == name {
			return t, true
		}
	}
	return Tool{}, false
}
