package cli_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/lakesession/lakesession/cmd/lakesession/cli"
)

// Running the command in a program of your own: the same as
// `lakesession migrate up --sqlite sessions.db`, then an import from a
// reader and a listing of the session's items.
func ExampleRun() {
	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	db := filepath.Join(dir, "sessions.db")
	ctx := context.Background()

	code := cli.Run(ctx, []string{"migrate", "up", "--sqlite", db}, cli.Env{})
	fmt.Println("exit code", code)

	lines := `{"session_id":"user-789","item":{"role":"user","content":"Hello I live in SF!"}}
{"session_id":"user-789","item":{"type":"message","role":"assistant","content":[{"type":"output_text","text":"Noted: you live in SF."}]}}
`
	cli.Run(ctx, []string{"sessions", "import", "--sqlite", db}, cli.Env{Stdin: strings.NewReader(lines)})
	cli.Run(ctx, []string{"sessions", "show", "user-789", "--sqlite", db}, cli.Env{})
	// Output:
	// applied 20260601000000_lakesession_agent_tables (group 1)
	// exit code 0
	// imported 1 session, 2 items
	// user: Hello I live in SF!
	// assistant: Noted: you live in SF.
}
