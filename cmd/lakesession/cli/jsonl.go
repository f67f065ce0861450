package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/lakesession/lakesession"
	"github.com/lakesession/lakesession/bunstore"
)

// The JSON Lines format of export and import: one item per line,
//
//	{"session_id":"user-789","item":{"role":"user","content":"Hello"}}
//
// a session's lines in the order of its items, oldest first. Export writes
// each item exactly as stored; import stores each item in compact form
// (stored items are compact already, so an export imports back byte for
// byte). Other members of a line are ignored; blank lines are skipped.

// MaxLineBytes is the longest line import reads.
const MaxLineBytes = 64 << 20

// errBlank marks a blank line, which import skips.
var errBlank = errors.New("blank line")

// parseLine reads one line of the format: the session id and the item in
// compact form. The error says what is wrong without quoting the line.
func parseLine(line []byte) (id string, item []byte, err error) {
	line = bytes.TrimRight(line, "\r\n")
	if len(bytes.TrimSpace(line)) == 0 {
		return "", nil, errBlank
	}
	if !utf8.Valid(line) {
		return "", nil, errors.New("not valid UTF-8: encode the file as UTF-8")
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(line, &m); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return "", nil, fmt.Errorf("not valid JSON (at byte %d): write one JSON object per line, {\"session_id\":\"...\",\"item\":{...}}", se.Offset)
		}
		return "", nil, errors.New("not a JSON object: write one JSON object per line, {\"session_id\":\"...\",\"item\":{...}}")
	}
	rawID, ok := m["session_id"]
	if !ok {
		return "", nil, errors.New(`no "session_id": each line is {"session_id":"...","item":{...}}`)
	}
	if err := json.Unmarshal(rawID, &id); err != nil {
		return "", nil, errors.New(`"session_id" is not a string: give the session id as a JSON string`)
	}
	if err := lakesession.ValidateSessionID(id); err != nil {
		return "", nil, fmt.Errorf(`"session_id": %w`, err)
	}
	rawItem, ok := m["item"]
	if !ok {
		return "", nil, errors.New(`no "item": each line is {"session_id":"...","item":{...}}`)
	}
	item, err = lakesession.CompactItem(rawItem)
	if err != nil {
		return "", nil, fmt.Errorf(`"item": %w`, err)
	}
	return id, item, nil
}

// writeLine writes one line of the format with the item's bytes as they
// are (on one line, see oneLine).
func writeLine(w *bufio.Writer, id string, item []byte) error {
	w.WriteString(`{"session_id":`)
	w.WriteString(jsonText(id))
	w.WriteString(`,"item":`)
	w.Write(oneLine(item))
	_, err := w.WriteString("}\n")
	return err
}

type exportFlags struct {
	all   bool
	since string
}

func (a *app) exportCommand() *cobra.Command {
	var f exportFlags
	cmd := &cobra.Command{
		Use:   "export (ID... | --all [--since T])",
		Short: "Write sessions as JSON Lines on stdout, one item per line",
		Long: `export writes the items of the named sessions (or of every session with
--all) to stdout as JSON Lines, one item per line, each session's items
oldest first:

  {"session_id":"user-789","item":{"role":"user","content":"Hello I live in SF!"}}

Each item is written exactly as stored. --since T (with --all) keeps the
sessions updated at or after T: an RFC 3339 time (2026-06-01T00:00:00Z), a
date (2026-06-01, midnight UTC) or an age (7d, 12h). Each session is read
in one statement; sessions are not read in one snapshot.`,
		Args: func(cmd *cobra.Command, args []string) error {
			switch {
			case f.all && len(args) > 0:
				return usagef("%s takes session ids or --all, not both", cmdName(cmd))
			case !f.all && len(args) == 0:
				return usagef("%s needs session ids, or --all", cmdName(cmd))
			case f.since != "" && !f.all:
				return usagef("--since goes with --all")
			}
			return nil
		},
		RunE: a.run(func(cmd *cobra.Command, args []string) error {
			var since time.Time
			if f.since != "" {
				t, err := parseSince(f.since, a.env.Now())
				if err != nil {
					return usagef("--since %q: %v", f.since, err)
				}
				since = t
			}
			ids, err := checkIDs(args)
			if err != nil {
				return err
			}
			return a.export(cmd.Context(), ids, f.all, since)
		}),
	}
	cmd.Flags().BoolVar(&f.all, "all", false, "export every session")
	cmd.Flags().StringVar(&f.since, "since", "", "with --all, only sessions updated at or after this time or age (2026-06-01T00:00:00Z, 2026-06-01, 7d)")
	return cmd
}

func (a *app) export(ctx context.Context, ids []string, all bool, since time.Time) error {
	var corrupt int
	c, store, err := a.openStore(ctx, openOptions{}, bunstore.WithCorruptItemHandler(func(_ context.Context, ci bunstore.CorruptItem) {
		corrupt++
		fmt.Fprintf(a.env.Stderr, "warning: session %s: stored item %d is not valid JSON; it is left out of the export\n", jsonText(ci.SessionID), ci.MessageID)
	}))
	if err != nil {
		return err
	}
	defer c.Close()
	if all {
		if ids, err = a.sessionIDs(ctx, c, since); err != nil {
			return err
		}
	} else {
		found, err := a.existing(ctx, c.db, ids)
		if err != nil {
			return err
		}
		var missing []string
		for _, id := range ids {
			if !found[id] {
				missing = append(missing, jsonText(id))
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("no session %s: nothing was exported (`lakesession sessions list` shows the sessions)", joinSome(missing, 10))
		}
	}
	w := bufio.NewWriterSize(a.env.Stdout, 256<<10)
	bar := a.newProgress(int64(len(ids)), "sessions")
	var sessions, items int64
	for i, id := range ids {
		// One statement: the session's items as of one instant, each
		// batch written meanwhile whole or not at all.
		got, err := store.Session(id).GetItems(ctx, 0)
		if err != nil {
			bar.done()
			w.Flush()
			return err
		}
		for _, it := range got {
			if err := writeLine(w, id, it); err != nil {
				bar.done()
				return fmt.Errorf("write the export: %w", err)
			}
		}
		if len(got) > 0 {
			sessions++
		}
		items += int64(len(got))
		bar.set(int64(i + 1))
	}
	bar.done()
	if err := w.Flush(); err != nil {
		return fmt.Errorf("write the export: %w", err)
	}
	fmt.Fprintf(a.env.Stderr, "exported %s, %s\n", plural(sessions, "session"), plural(items, "item"))
	if corrupt > 0 {
		return &reportedError{msg: fmt.Sprintf("%s not valid JSON and left out of the export (see the warnings above)", plural(int64(corrupt), "stored item"))}
	}
	return nil
}

// sessionIDs returns the id of every session updated at or after since
// (every session when since is zero), most recently updated first, read in
// one statement: a session that is written while export --all runs is
// exported, with the items it has when its turn comes. (Pages of
// ListSessions would miss a session that a write moves to the front after
// its page was read.)
func (a *app) sessionIDs(ctx context.Context, c *conn, since time.Time) ([]string, error) {
	sessions, _ := a.tables()
	q, args := "SELECT session_id FROM "+sessions, []any{}
	if !since.IsZero() {
		expr, arg := updatedAtCutoff(c, since)
		q, args = q+" WHERE updated_at >= "+expr, append(args, arg)
	}
	rows, err := c.db.QueryContext(ctx, q+" ORDER BY updated_at DESC, session_id DESC", args...)
	if err != nil {
		return nil, fmt.Errorf("list the sessions: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("list the sessions: %w", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list the sessions: %w", err)
	}
	return ids, nil
}

func joinSome(list []string, most int) string {
	if len(list) <= most {
		return joinList(list)
	}
	return joinList(list[:most]) + fmt.Sprintf(" and %d more", len(list)-most)
}

func joinList(list []string) string {
	switch len(list) {
	case 0:
		return ""
	case 1:
		return list[0]
	}
	s := ""
	for i, v := range list {
		switch {
		case i == 0:
		case i == len(list)-1:
			s += " and "
		default:
			s += ", "
		}
		s += v
	}
	return s
}

// Values of import's --if-exists.
const (
	ifExistsRefuse = "refuse"
	ifExistsAppend = "append"
)

type importFlags struct {
	ifExists string
}

func (a *app) importCommand() *cobra.Command {
	var f importFlags
	cmd := &cobra.Command{
		Use:   "import [FILE]",
		Short: "Read sessions from JSON Lines (a file, or stdin) and store them",
		Long: `import reads JSON Lines in the format export writes (from FILE, or stdin
when FILE is - or missing) and adds each session's items in one batch, in
the order of its lines.

Every line is checked before anything is written: a line that is not
{"session_id":"...","item":{...}} with a valid session id and an item that
is a JSON object is reported with its line number, and then nothing is
imported. A session that exists already is refused (nothing is imported)
unless --if-exists append, which appends the lines to it as one batch.

Producing the format: jq -c '{session_id: "s1", item: .[]}' items.json, or
in Python: print(json.dumps({"session_id": sid, "item": item})).`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usagef("%s reads one file (or stdin), not %d", cmdName(cmd), len(args))
			}
			return nil
		},
		RunE: a.run(func(cmd *cobra.Command, args []string) error {
			if f.ifExists != ifExistsRefuse && f.ifExists != ifExistsAppend {
				return usagef("--if-exists %q: use %s or %s", f.ifExists, ifExistsRefuse, ifExistsAppend)
			}
			name := "-"
			if len(args) == 1 {
				name = args[0]
			}
			return a.importSessions(cmd.Context(), name, f)
		}),
	}
	cmd.Flags().StringVar(&f.ifExists, "if-exists", ifExistsRefuse, "what to do with a session that exists: refuse (import nothing) or append (one batch per session)")
	return cmd
}

// span locates a run of consecutive lines of one session in the input:
// size bytes from off, newlines included, holding items lines.
type span struct {
	off, size int64
	items     int
}

// importPlan is one session of the input: where its lines are. A session
// whose lines are next to each other, as export writes them, is one span,
// so that the plan of an input takes memory per session, not per line.
type importPlan struct {
	id    string
	spans []span
	items int
}

// add notes the line of size bytes at off, extending the last span when
// the line follows it directly.
func (p *importPlan) add(off, size int64) {
	p.items++
	if n := len(p.spans); n > 0 && p.spans[n-1].off+p.spans[n-1].size == off {
		p.spans[n-1].size += size
		p.spans[n-1].items++
		return
	}
	p.spans = append(p.spans, span{off: off, size: size, items: 1})
}

// batch reads the session's items from r in compact form: the lines of
// its spans, which pass 1 checked.
func (p *importPlan) batch(r io.ReaderAt) ([]json.RawMessage, error) {
	items := make([]json.RawMessage, 0, p.items)
	for _, sp := range p.spans {
		buf := make([]byte, sp.size)
		if n, err := r.ReadAt(buf, sp.off); n < len(buf) {
			if err == nil || errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("read the input again: %w", err)
		}
		n := 0
		for line := range bytes.Lines(buf) {
			id, item, err := parseLine(line)
			if err != nil {
				return nil, fmt.Errorf("the input changed while it was read: %w", err)
			}
			if id != p.id {
				return nil, errors.New("the input changed while it was read: a line moved to another session")
			}
			items = append(items, item)
			n++
		}
		if n != sp.items {
			return nil, errors.New("the input changed while it was read: a session has other lines than before")
		}
	}
	return items, nil
}

// badLine is a line import refuses.
type badLine struct {
	n   int
	err error
}

// source opens the input as something import can read twice: a regular
// file as it is, anything else (stdin, a pipe) copied to a temporary file
// while it is read the first time.
type source struct {
	r       io.Reader
	readAt  io.ReaderAt
	cleanup func()
}

func (a *app) openSource(name string) (*source, error) {
	var f *os.File
	if name == "-" {
		if sf, ok := a.env.Stdin.(*os.File); ok {
			f = sf
		} else {
			return spool(a.env.Stdin)
		}
	} else {
		var err error
		if f, err = os.Open(name); err != nil {
			return nil, fmt.Errorf("open the input: %w", err)
		}
	}
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
		if off, err := f.Seek(0, io.SeekCurrent); err == nil && off == 0 {
			closeIt := func() {}
			if name != "-" {
				closeIt = func() { f.Close() }
			}
			return &source{r: f, readAt: f, cleanup: closeIt}, nil
		}
	}
	s, err := spool(f)
	if err != nil {
		if name != "-" {
			f.Close()
		}
		return nil, err
	}
	if name != "-" {
		inner := s.cleanup
		s.cleanup = func() { inner(); f.Close() }
	}
	return s, nil
}

func spool(r io.Reader) (*source, error) {
	tmp, err := os.CreateTemp("", "lakesession-import-*.jsonl")
	if err != nil {
		return nil, fmt.Errorf("create a temporary copy of the input: %w", err)
	}
	return &source{
		r:      io.TeeReader(r, tmp),
		readAt: tmp,
		cleanup: func() {
			tmp.Close()
			os.Remove(tmp.Name())
		},
	}, nil
}

// readLine reads one line of at most max bytes (without its newline); a
// longer line is consumed and reported with tooLong.
func readLine(r *bufio.Reader, max int) (line []byte, size int, tooLong bool, err error) {
	for {
		chunk, err := r.ReadSlice('\n')
		size += len(chunk)
		if !tooLong {
			if len(line)+len(chunk) > max+1 {
				tooLong, line = true, nil
			} else {
				line = append(line, chunk...)
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, size, tooLong, err
		}
		if size == 0 && errors.Is(err, io.EOF) {
			return nil, 0, false, io.EOF
		}
		return bytes.TrimSuffix(line, []byte("\n")), size, tooLong, nil
	}
}

// maxBadShown is how many bad lines import reports one by one.
const maxBadShown = 20

// importInput is what the first pass over an input found.
type importInput struct {
	// plans are the sessions, in the order of their first lines.
	plans []*importPlan
	items int64
	lines int
	// badLines counts the bad lines; bad holds the first maxBadShown.
	badLines int
	bad      []badLine
}

// planImport reads the input once: it checks every line and notes where
// each session's lines are. Its memory grows with the sessions (and the
// runs of a session's lines), not with the lines.
func planImport(r io.Reader) (*importInput, error) {
	in := &importInput{}
	byID := map[string]*importPlan{}
	var off int64
	br := bufio.NewReaderSize(r, 1<<20)
	for {
		line, size, tooLong, err := readLine(br, MaxLineBytes)
		if errors.Is(err, io.EOF) {
			return in, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read the input: %w", err)
		}
		in.lines++
		lineOff := off
		off += int64(size)
		if tooLong {
			err = fmt.Errorf("longer than %d MiB", MaxLineBytes>>20)
		} else {
			var id string
			id, _, err = parseLine(line)
			if errors.Is(err, errBlank) {
				continue
			}
			if err == nil {
				p := byID[id]
				if p == nil {
					p = &importPlan{id: id}
					byID[id] = p
					in.plans = append(in.plans, p)
				}
				p.add(lineOff, int64(size))
				in.items++
				continue
			}
		}
		in.badLines++
		if len(in.bad) < maxBadShown {
			in.bad = append(in.bad, badLine{in.lines, err})
		}
	}
}

func (a *app) importSessions(ctx context.Context, name string, f importFlags) error {
	src, err := a.openSource(name)
	if err != nil {
		return err
	}
	defer src.cleanup()

	// Pass 1: check every line, and note where each session's lines are.
	in, err := planImport(src.r)
	if err != nil {
		return err
	}
	if in.badLines > 0 {
		for _, b := range in.bad {
			fmt.Fprintf(a.env.Stderr, "line %d: %v\n", b.n, b.err)
		}
		if more := in.badLines - len(in.bad); more > 0 {
			fmt.Fprintf(a.env.Stderr, "... and %d more bad lines\n", more)
		}
		return &reportedError{msg: fmt.Sprintf("%s of %d: nothing was imported", plural(int64(in.badLines), "bad line"), in.lines)}
	}
	plans, items := in.plans, in.items
	if len(plans) == 0 {
		fmt.Fprintln(a.env.Stdout, "imported 0 sessions: the input has no lines")
		return nil
	}

	c, store, err := a.openStore(ctx, openOptions{})
	if err != nil {
		return err
	}
	defer c.Close()
	ids := make([]string, len(plans))
	for i, p := range plans {
		ids[i] = p.id
	}
	found, err := a.existing(ctx, c.db, ids)
	if err != nil {
		return err
	}
	var exist []string
	for _, id := range ids {
		if found[id] {
			exist = append(exist, jsonText(id))
		}
	}
	if len(exist) > 0 && f.ifExists == ifExistsRefuse {
		return fmt.Errorf("%s already exist: %s; nothing was imported (pass --if-exists append to add the items to them, or delete them first)", plural(int64(len(exist)), "session"), joinSome(exist, 10))
	}

	// Pass 2: one batch per session.
	bar := a.newProgress(items, "items")
	var done, doneItems int64
	for _, p := range plans {
		batch, err := p.batch(src.readAt)
		if err != nil {
			bar.done()
			return fmt.Errorf("%w; imported %d of %d sessions before it, the others were not imported", err, done, len(plans))
		}
		if err := store.Session(p.id).AddItems(ctx, batch); err != nil {
			bar.done()
			return fmt.Errorf("%w; imported %d of %d sessions before it, the others were not imported", err, done, len(plans))
		}
		done++
		doneItems += int64(len(batch))
		bar.set(doneItems)
	}
	bar.done()
	msg := fmt.Sprintf("imported %s, %s", plural(done, "session"), plural(doneItems, "item"))
	if len(exist) > 0 {
		msg += fmt.Sprintf(" (appended to %s)", plural(int64(len(exist)), "existing session"))
	}
	fmt.Fprintln(a.env.Stdout, msg)
	return nil
}
