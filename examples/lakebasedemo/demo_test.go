package lakebasedemo_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/databricks/databricks-sdk-go"

	"github.com/lakesession/lakesession"
	"github.com/lakesession/lakesession/examples/agentserver/agent"
	"github.com/lakesession/lakesession/examples/agentserver/storage"
	"github.com/lakesession/lakesession/examples/internal/demo"
	"github.com/lakesession/lakesession/examples/internal/locallakebase"
	"github.com/lakesession/lakesession/lakebasecred"
)

func TestLakebaseDemo(t *testing.T) {
	ctx := context.Background()
	out := io.Discard
	if testing.Verbose() {
		out = os.Stdout
	}
	lb := locallakebase.Setup(t)
	fmt.Fprintf(out, "\nDatabricks control plane (lakebasetest fake, offline): %s\n", lb.Fake.URL())
	fmt.Fprintf(out, "  instance %q -> PostgreSQL 127.0.0.1:%d, TLS verify-full; user %q; database %q\n",
		locallakebase.InstanceName, lb.Port, lb.Role, lb.Database)

	// The agent server's own storage code, given the fake's client instead
	// of databricks.NewWorkspaceClient() and the local server's port and
	// certificate.
	st, err := storage.Open(ctx, storage.Config{
		Lakebase:         lakebasecred.Target{Instance: locallakebase.InstanceName},
		LakebaseDatabase: lb.Database,
		Workspace:        func() (*databricks.WorkspaceClient, error) { return lb.Fake.WorkspaceClient(), nil },
		ConnectorOptions: lb.ConnectorOptions,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	fmt.Fprintf(out, "storage: %s\n", st.Description)

	srv := httptest.NewServer(&agent.Handler{
		Sessions: func(id string) lakesession.Session { return st.Store.Session(id) },
		Model:    agent.OfflineModel{},
		Tools:    []agent.Tool{agent.WeatherTool()},
		Logger:   slog.New(slog.NewTextHandler(out, nil)),
	})
	defer srv.Close()

	res, err := demo.Converse(ctx, srv.Client(), srv.URL, out)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := demo.PrintRows(ctx, st.DB, res.SessionID, out)
	if err != nil {
		t.Fatal(err)
	}
	if err := demo.CheckTurns(rows, res, out); err != nil {
		t.Error(err)
	}

	// What happened underneath: tokens minted by the control plane, and
	// connections logged in with them, as the Lakebase role, over TLS.
	mints := lb.Fake.Mints()
	fmt.Fprintf(out, "\n--- Lakebase path\ntokens minted: %d\n", len(mints))
	for _, m := range mints {
		fmt.Fprintf(out, "  %v\n", m) // a Mint prints without its token
		if strings.Contains(fmt.Sprint(m), m.Token) {
			t.Errorf("a printed Mint shows its token")
		}
	}
	if len(mints) == 0 {
		t.Fatal("no token was minted: the Lakebase path was not used")
	}
	var conns int
	var allTLS bool
	err = lb.Admin.QueryRowContext(ctx, `SELECT count(*), coalesce(bool_and(s.ssl), false)
		FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
		WHERE a.usename = $1 AND a.datname = $2`, lb.Role, lb.Database).Scan(&conns, &allTLS)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(out, "open connections of %s: %d, all over TLS: %v\n", lb.Role, conns, allTLS)
	if conns == 0 || !allTLS {
		t.Errorf("%d connections of the Lakebase role, all TLS %v; want at least one, all TLS", conns, allTLS)
	}
	var owner string
	if err := st.DB.QueryRowContext(ctx, `SELECT tableowner FROM pg_tables WHERE tablename = 'agent_messages'`).Scan(&owner); err != nil {
		t.Fatal(err)
	}
	if owner != lb.Role {
		t.Errorf("agent_messages is owned by %q, want the Lakebase role %q", owner, lb.Role)
	}
	fmt.Fprintf(out, "the session tables were created by %s\n", owner)
	fmt.Fprintf(out, "\ndemo-lakebase OK: session %s: the second answer recalled SF, the third called get_weather for SF, each turn one batch\n", res.SessionID)
}
