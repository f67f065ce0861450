package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDemo runs `make demo`'s steps: the agent server binary, started and
// stopped by the demo, on SQLite. Variables that would take the server off
// the offline path are set, and must be ignored.
func TestDemo(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to build the server with")
	}
	dir := t.TempDir()
	server := filepath.Join(dir, "agentserver")
	build := exec.Command(goBin, "build", "-o", server, "../../agentserver")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the server: %v\n%s", err, out)
	}
	t.Setenv("OPENAI_BASE_URL", "http://127.0.0.1:1/v1/")
	t.Setenv("OPENAI_API_KEY", "must-not-be-used")
	t.Setenv("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
	t.Setenv("LAKEBASE_INSTANCE_NAME", "none")
	t.Setenv("DATABRICKS_SERVING_ENDPOINT", "none")

	var out bytes.Buffer
	if err := run(server, dir, &out); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	for _, want := range []string{
		"model=offline-demo-model",
		"assistant: [offline demo model] You said you live in SF.",
		`tool call: get_weather({"city":"SF"})`,
		`tool out:  {"city":"SF","sky":"fog","temperature_c":16,"source":"fixed demo table, not a forecast"}`,
		"assistant: [offline demo model] You said you live in SF. get_weather says: fog, 16 °C in SF",
		"--- agent_messages",
		`"content":"What city did I say I live in?"`,
		"turn 3: ids 5-8, created_at ",
		": message, function_call, function_call_output, message\n",
		"msg=stopped",
		"demo OK",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the demo's output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestDemoFailsWhenTheServerDoes(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	script := filepath.Join(t.TempDir(), "broken-server")
	if err := writeExecutable(script, "#!"+sh+"\necho 'cannot open the database' >&2\nexit 3\n"); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err = run(script, t.TempDir(), &out)
	if err == nil || !strings.Contains(err.Error(), "exited before listening") {
		t.Errorf("demo with a failing server: %v", err)
	}
	if !strings.Contains(out.String(), "cannot open the database") {
		t.Errorf("the server's error was not shown:\n%s", out.String())
	}
}

func writeExecutable(path, content string) error {
	return os.WriteFile(path, []byte(content), 0o755)
}
