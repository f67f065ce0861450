package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"github.com/uptrace/bun/dialect"

	"github.com/lakesession/lakesession/bunstore"
)

type pruneFlags struct {
	olderThan string
	dryRun    bool
	batchSize int
}

func (a *app) pruneCommand() *cobra.Command {
	var f pruneFlags
	cmd := &cobra.Command{
		Use:   "prune --older-than AGE [--dry-run] [--batch-size N]",
		Short: "Delete the sessions not updated for a while, in batches",
		Long: `prune deletes every session whose last update is older than --older-than,
with all its items, through bunstore's PruneSessions: at most --batch-size
sessions per transaction, each a short transaction of its own, and a
session is deleted whole or kept whole, also while items are being added
to it. --dry-run counts what would be deleted and deletes nothing.

The age is a number and a unit: w (weeks), d (days), h, min or s, as in 30d,
12h, 2w, 1d12h or 90min. "m" is refused, since it could mean minutes or
months: write 90min, or 180d.

On a terminal a progress bar shows on stderr; the result is one line on
stdout.`,
		Args: noArgs,
		RunE: a.run(func(cmd *cobra.Command, _ []string) error {
			age, err := parseAge(f.olderThan)
			if err != nil {
				return usagef("--older-than %q: %v", f.olderThan, err)
			}
			if err := checkRange(cmd.Flags(), "batch-size", f.batchSize, 1, bunstore.MaxPruneBatchSize); err != nil {
				return err
			}
			return a.prune(cmd.Context(), a.env.Now().Add(-age), f)
		}),
	}
	cmd.Flags().StringVar(&f.olderThan, "older-than", "", "delete the sessions not updated for this long: 30d, 12h, 2w, 90min (required)")
	cmd.Flags().BoolVar(&f.dryRun, "dry-run", false, "count what would be deleted; delete nothing")
	cmd.Flags().IntVar(&f.batchSize, "batch-size", bunstore.DefaultPruneBatchSize, fmt.Sprintf("sessions per transaction, 1 to %d", bunstore.MaxPruneBatchSize))
	_ = cmd.MarkFlagRequired("older-than")
	return cmd
}

// updatedAtCutoff returns the SQL expression, and its argument, that an
// updated_at is compared with for the instant t, as PruneSessions compares
// it: on PostgreSQL the wall clock of t in the connection's TimeZone, the
// one updated_at was written in; on SQLite UTC text to the second (t
// rounded down).
func updatedAtCutoff(c *conn, t time.Time) (expr string, arg any) {
	if c.db.Dialect().Name() == dialect.PG {
		return "CAST(CAST(? AS timestamptz) AS timestamp)", t
	}
	return "?", t.UTC().Format("2006-01-02 15:04:05")
}

// countOlder estimates how many sessions a prune will find, for the
// progress bar: one count through the (updated_at, session_id) index.
func (a *app) countOlder(ctx context.Context, c *conn, before time.Time) (int64, error) {
	sessions, _ := a.tables()
	expr, arg := updatedAtCutoff(c, before)
	var n int64
	err := c.db.QueryRowContext(ctx, "SELECT count(*) FROM "+sessions+" WHERE updated_at < "+expr, arg).Scan(&n)
	return n, err
}

func (a *app) prune(ctx context.Context, before time.Time, f pruneFlags) error {
	c, store, err := a.openStore(ctx, openOptions{})
	if err != nil {
		return err
	}
	defer c.Close()
	var bar *progress
	if a.env.IsTerminal(a.env.Stderr) {
		if n, err := a.countOlder(ctx, c, before); err == nil {
			bar = a.newProgress(n, "sessions")
		}
	}
	start := time.Now()
	res, err := store.PruneSessions(ctx, bunstore.PruneOptions{
		Before:    before,
		BatchSize: f.batchSize,
		DryRun:    f.dryRun,
		Progress: func(p bunstore.PruneProgress) {
			bar.grow(p.Total.Sessions)
			bar.set(p.Total.Sessions)
		},
	})
	bar.done()
	cutoff := instant(before)
	if err != nil {
		if res.Sessions > 0 && !f.dryRun {
			fmt.Fprintf(a.env.Stdout, "deleted %s, %s not updated since %s in %s before the error\n",
				plural(res.Sessions, "session"), plural(res.Items, "item"), cutoff, pluralBatch(res.Batches))
		}
		return err
	}
	took := time.Since(start).Round(time.Millisecond)
	if f.dryRun {
		fmt.Fprintf(a.env.Stdout, "would delete %s, %s not updated since %s (%s of at most %d; dry run: nothing deleted, %s)\n",
			plural(res.Sessions, "session"), plural(res.Items, "item"), cutoff, pluralBatch(res.Batches), batchSize(f.batchSize), took)
		return nil
	}
	fmt.Fprintf(a.env.Stdout, "deleted %s, %s not updated since %s (%s of at most %d, %s)\n",
		plural(res.Sessions, "session"), plural(res.Items, "item"), cutoff, pluralBatch(res.Batches), batchSize(f.batchSize), took)
	return nil
}

func batchSize(n int) int {
	if n == 0 {
		return bunstore.DefaultPruneBatchSize
	}
	return n
}

func pluralBatch(n int) string {
	if n == 1 {
		return "1 batch"
	}
	return thousands(int64(n)) + " batches"
}
