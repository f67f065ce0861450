package cli

import (
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// isTerminal reports whether w is a terminal: an *os.File whose descriptor
// is one (a pipe, a regular file or /dev/null is not).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	return term.IsTerminal(int(f.Fd()))
}

// progress draws a bar on stderr when stderr is a terminal, and nothing
// otherwise. A nil *progress draws nothing.
type progress struct {
	bar *progressbar.ProgressBar
}

// newProgress starts a bar counting to total (a known total: no spinner,
// and so no goroutine of the bar's own).
func (a *app) newProgress(total int64, what string) *progress {
	if total <= 0 || !a.env.IsTerminal(a.env.Stderr) {
		return nil
	}
	bar := progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(a.env.Stderr),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowCount(),
		progressbar.OptionSetItsString(what),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSetRenderBlankState(true),
		progressbar.OptionSpinnerType(14),
		progressbar.OptionSetSpinnerChangeInterval(0),
		progressbar.OptionClearOnFinish(),
	)
	return &progress{bar: bar}
}

// set moves the bar to n.
func (p *progress) set(n int64) {
	if p == nil {
		return
	}
	_ = p.bar.Set64(n)
}

// grow raises the bar's total (a prune that finds more than it counted).
func (p *progress) grow(total int64) {
	if p == nil {
		return
	}
	if total > p.bar.GetMax64() {
		p.bar.ChangeMax64(total)
	}
}

// done clears the bar, leaving the terminal line free for the result.
func (p *progress) done() {
	if p == nil {
		return
	}
	_ = p.bar.Finish()
	_ = p.bar.Clear()
}
