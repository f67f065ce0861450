package cli

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/uptrace/bun"

	"github.com/lakesession/lakesession"
	"github.com/lakesession/lakesession/bunstore"
)

func (a *app) sessionsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sessions",
		Short: "List, show, export, import and delete sessions",
		RunE:  a.group,
	}
	cmd.AddCommand(a.listCommand(), a.showCommand(), a.exportCommand(), a.importCommand(), a.deleteCommand())
	return cmd
}

// tables returns the quoted, possibly schema-qualified table names.
func (a *app) tables() (sessions, messages string) {
	return a.qualify(a.conn.sessionsTable), a.qualify(a.conn.messagesTable)
}

// qualify returns table, in the --schema when one is given, quoted for SQL
// (and as regclass text).
func (a *app) qualify(table string) string {
	if a.conn.schema != "" {
		return `"` + a.conn.schema + `"."` + table + `"`
	}
	return `"` + table + `"`
}

// jsonText writes s as a JSON string, without HTML escapes.
func jsonText(s string) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string cannot fail
	return strings.TrimSuffix(b.String(), "\n")
}

// itemCounts returns the number of items of each of ids that has any: one
// statement per 1,000 ids, read through the (session_id, created_at, id)
// index.
func (a *app) itemCounts(ctx context.Context, db bun.IDB, ids []string) (map[string]int64, error) {
	counts := make(map[string]int64, len(ids))
	_, messages := a.tables()
	err := eachRow(ctx, db, "SELECT session_id, count(*) FROM "+messages+" WHERE session_id IN (?) GROUP BY session_id", ids, func(rows *sql.Rows) error {
		var (
			id string
			n  int64
		)
		err := rows.Scan(&id, &n)
		counts[id] = n
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("count items: %w", err)
	}
	return counts, nil
}

// existing returns which of ids have a session row.
func (a *app) existing(ctx context.Context, db bun.IDB, ids []string) (map[string]bool, error) {
	found := make(map[string]bool, len(ids))
	sessions, _ := a.tables()
	err := eachRow(ctx, db, "SELECT session_id FROM "+sessions+" WHERE session_id IN (?)", ids, func(rows *sql.Rows) error {
		var id string
		err := rows.Scan(&id)
		found[id] = true
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("look up sessions: %w", err)
	}
	return found, nil
}

// eachRow runs query, whose one placeholder takes a list of ids, for each
// chunk of 1,000 ids, and calls scan on each row of the results.
func eachRow(ctx context.Context, db bun.IDB, query string, ids []string, scan func(*sql.Rows) error) error {
	for chunk := range slices.Chunk(ids, 1000) {
		rows, err := db.QueryContext(ctx, query, bun.List(chunk))
		if err != nil {
			return err
		}
		for rows.Next() {
			if err := scan(rows); err != nil {
				rows.Close()
				return err
			}
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// checkIDs refuses invalid session ids before anything runs, and drops
// repeated ones.
func checkIDs(ids []string) ([]string, error) {
	seen := make(map[string]bool, len(ids))
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if err := lakesession.ValidateSessionID(id); err != nil {
			return nil, usagef("session id %q: %v", id, err)
		}
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out, nil
}

// instant formats a time for people: RFC 3339 in UTC, to the second.
func instant(t time.Time) string { return t.UTC().Format(time.RFC3339) }

type listFlags struct {
	limit  int
	cursor string
	json   bool
}

// listedSession is one session of `sessions list --json`.
type listedSession struct {
	SessionID string    `json:"session_id"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	Items     int64     `json:"items"`
}

type listPage struct {
	Sessions   []listedSession `json:"sessions"`
	NextCursor string          `json:"next_cursor"`
}

func (a *app) listCommand() *cobra.Command {
	var f listFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List sessions, most recently updated first, with their times and item counts",
		Long: `list prints one page of sessions, most recently updated first: the session
id, when it was created and last updated (instants, shown in UTC, whatever
time zone the database writes in) and how many items it has. When more
sessions follow, the cursor of the next page is printed on stderr; pass it
with --cursor. With --json the page is one JSON object:
{"sessions":[{"session_id":...,"created_at":...,"updated_at":...,"items":N}],"next_cursor":"..."}.`,
		Args: noArgs,
		RunE: a.run(func(cmd *cobra.Command, _ []string) error {
			if err := checkRange(cmd.Flags(), "limit", f.limit, 1, bunstore.MaxListLimit); err != nil {
				return err
			}
			return a.list(cmd.Context(), f)
		}),
	}
	cmd.Flags().IntVar(&f.limit, "limit", bunstore.DefaultListLimit, fmt.Sprintf("sessions per page, 1 to %d", bunstore.MaxListLimit))
	cmd.Flags().StringVar(&f.cursor, "cursor", "", "continue after the page whose next cursor this is")
	cmd.Flags().BoolVar(&f.json, "json", false, "print the page as one JSON object")
	return cmd
}

func (a *app) list(ctx context.Context, f listFlags) error {
	c, store, err := a.openStore(ctx, openOptions{})
	if err != nil {
		return err
	}
	defer c.Close()
	page, err := store.ListSessions(ctx, bunstore.ListOptions{Limit: f.limit, Cursor: f.cursor})
	if errors.Is(err, bunstore.ErrInvalidCursor) {
		return usagef("--cursor %q is not a cursor sessions list printed: pass the one printed after the previous page, or leave --cursor out for the first page", f.cursor)
	}
	if err != nil {
		return err
	}
	ids := make([]string, len(page.Sessions))
	for i, s := range page.Sessions {
		ids[i] = s.ID
	}
	counts, err := a.itemCounts(ctx, c.db, ids)
	if err != nil {
		return err
	}
	out := listPage{Sessions: make([]listedSession, len(page.Sessions)), NextCursor: page.NextCursor}
	for i, s := range page.Sessions {
		out.Sessions[i] = listedSession{SessionID: s.ID, CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt, Items: counts[s.ID]}
	}
	if f.json {
		enc := json.NewEncoder(a.env.Stdout)
		enc.SetEscapeHTML(false)
		return enc.Encode(out)
	}
	if len(out.Sessions) == 0 {
		fmt.Fprintln(a.env.Stderr, "no sessions")
		return nil
	}
	tw := tabwriter.NewWriter(a.env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SESSION\tCREATED\tUPDATED\tITEMS")
	for _, s := range out.Sessions {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", printable(s.SessionID), instant(s.CreatedAt), instant(s.UpdatedAt), s.Items)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if out.NextCursor != "" {
		fmt.Fprintf(a.env.Stderr, "more sessions: run the command again with --cursor %s\n", out.NextCursor)
	}
	return nil
}

// printable shows a session id on one line: control characters escaped.
func printable(s string) string {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			q := jsonText(s)
			return q
		}
	}
	return s
}

type showFlags struct {
	limit int
	json  bool
}

func (a *app) showCommand() *cobra.Command {
	var f showFlags
	cmd := &cobra.Command{
		Use:   "show ID",
		Short: "Print a session's items, one per line, oldest first",
		Long: `show prints the items of one session, one per line, oldest first: by
default the role or item type and its text (a function call as
name(arguments)); with --json each item exactly as stored. --limit N shows
the latest N items, still oldest first.`,
		Args: exactArgs(1, "one session id"),
		RunE: a.run(func(cmd *cobra.Command, args []string) error {
			if f.limit < 0 {
				return usagef("--limit %d: use a positive number of items, or 0 for all", f.limit)
			}
			ids, err := checkIDs(args)
			if err != nil {
				return err
			}
			return a.show(cmd.Context(), ids[0], f)
		}),
	}
	cmd.Flags().IntVar(&f.limit, "limit", 0, "show only the latest N items (0: all)")
	cmd.Flags().BoolVar(&f.json, "json", false, "print each item as its stored JSON")
	return cmd
}

func (a *app) show(ctx context.Context, id string, f showFlags) error {
	var corrupt int
	c, store, err := a.openStore(ctx, openOptions{}, bunstore.WithCorruptItemHandler(func(_ context.Context, ci bunstore.CorruptItem) {
		corrupt++
		fmt.Fprintf(a.env.Stderr, "warning: session %s: stored item %d is not valid JSON; it is left out\n", jsonText(ci.SessionID), ci.MessageID)
	}))
	if err != nil {
		return err
	}
	defer c.Close()
	found, err := a.existing(ctx, c.db, []string{id})
	if err != nil {
		return err
	}
	if !found[id] {
		return fmt.Errorf("session %s does not exist (`lakesession sessions list` shows the sessions)", jsonText(id))
	}
	items, err := store.Session(id).GetItems(ctx, f.limit)
	if err != nil {
		return err
	}
	for _, it := range items {
		if f.json {
			fmt.Fprintf(a.env.Stdout, "%s\n", oneLine(it))
			continue
		}
		label, text := describeItem(it)
		fmt.Fprintf(a.env.Stdout, "%s: %s\n", label, text)
	}
	return nil
}

// oneLine returns a stored item on one line: its bytes as they are, or,
// for JSON stored with line breaks between tokens by another program, its
// compact form (JSON strings cannot hold a raw line break).
func oneLine(item []byte) []byte {
	if !strings.ContainsAny(string(item), "\r\n") {
		return item
	}
	c, err := lakesession.CompactItem(item)
	if err != nil {
		return item
	}
	return c
}

// describeItem returns a label (the role, else the item type) and a
// one-line text for a Responses-API input item.
func describeItem(raw []byte) (label, text string) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return "item", string(oneLine(raw))
	}
	str := func(key string) string {
		var s string
		if v, ok := m[key]; ok {
			_ = json.Unmarshal(v, &s)
		}
		return s
	}
	typ, role := str("type"), str("role")
	switch {
	case role != "" && (typ == "" || typ == "message"):
		label = role
	case role != "":
		label = typ + "/" + role
	case typ != "":
		label = typ
	default:
		label = "item"
	}
	switch {
	case m["content"] != nil:
		text = partsText(m["content"])
	case typ == "function_call":
		text = str("name") + "(" + str("arguments") + ")"
	case typ == "custom_tool_call":
		text = str("name") + "(" + str("input") + ")"
	case m["output"] != nil:
		text = partsText(m["output"])
	case typ == "reasoning":
		text = partsText(m["summary"])
		if text == "" {
			text = "(no summary)"
		}
	default:
		text = string(oneLine(raw))
	}
	return label, escapeLines(text)
}

// partsText reads a content value: a string, or parts with text.
func partsText(v json.RawMessage) string {
	var s string
	if json.Unmarshal(v, &s) == nil {
		return s
	}
	var parts []map[string]json.RawMessage
	if json.Unmarshal(v, &parts) != nil {
		return string(oneLine(v))
	}
	var out []string
	for _, p := range parts {
		var t string
		switch {
		case p["text"] != nil:
			_ = json.Unmarshal(p["text"], &t)
		case p["refusal"] != nil:
			_ = json.Unmarshal(p["refusal"], &t)
			t = "[refusal] " + t
		default:
			var typ string
			_ = json.Unmarshal(p["type"], &typ)
			if typ == "" {
				typ = "part"
			}
			t = "[" + typ + "]"
		}
		out = append(out, t)
	}
	return strings.Join(out, " ")
}

var lineEscaper = strings.NewReplacer("\r\n", `\n`, "\n", `\n`, "\r", `\r`)

func escapeLines(s string) string { return lineEscaper.Replace(s) }

func (a *app) deleteCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "delete ID...",
		Short: "Delete sessions with all their items",
		Long: `delete removes each named session and all its items, each session in one
transaction. A session id that does not exist is reported, and the exit
code is then 1; the others are deleted. On a terminal a progress bar shows
on stderr; the result is one line on stdout.`,
		Args: minArgs(1, "at least one session id"),
		RunE: a.run(func(cmd *cobra.Command, args []string) error {
			ids, err := checkIDs(args)
			if err != nil {
				return err
			}
			return a.deleteSessions(cmd.Context(), ids)
		}),
	}
	return cmd
}

func (a *app) deleteSessions(ctx context.Context, ids []string) error {
	c, store, err := a.openStore(ctx, openOptions{})
	if err != nil {
		return err
	}
	defer c.Close()
	found, err := a.existing(ctx, c.db, ids)
	if err != nil {
		return err
	}
	counts, err := a.itemCounts(ctx, c.db, ids)
	if err != nil {
		return err
	}
	var missing, present []string
	for _, id := range ids {
		if found[id] {
			present = append(present, id)
		} else {
			missing = append(missing, id)
		}
	}
	bar := a.newProgress(int64(len(present)), "sessions")
	var sessions, items int64
	start := time.Now()
	for _, id := range present {
		if err := store.Session(id).ClearSession(ctx); err != nil {
			bar.done()
			return fmt.Errorf("%w (deleted %d of %d sessions before it)", err, sessions, len(present))
		}
		sessions++
		items += counts[id]
		bar.set(sessions)
	}
	bar.done()
	fmt.Fprintf(a.env.Stdout, "deleted %s, %s in %s\n", plural(sessions, "session"), plural(items, "item"), time.Since(start).Round(time.Millisecond))
	if len(missing) > 0 {
		for _, id := range missing {
			fmt.Fprintf(a.env.Stderr, "session %s does not exist\n", jsonText(id))
		}
		return &reportedError{msg: fmt.Sprintf("%s not found", plural(int64(len(missing)), "session"))}
	}
	return nil
}

// plural writes "1 session", "2 sessions", with thousands separated.
func plural(n int64, noun string) string {
	s := thousands(n) + " " + noun
	if n != 1 {
		s += "s"
	}
	return s
}

func thousands(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
