package sessiontest_test

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/lakesession/lakesession/sessiontest"
)

// TestMemory runs the suite against the in-memory reference implementation.
func TestMemory(t *testing.T) {
	store := newMemStore(bugNone)
	sessiontest.Run(t, store.open)
	if n := store.count(); n != 0 {
		t.Errorf("after a passing run the store holds %d sessions, want 0: Run clears the sessions it made", n)
	}
}

// TestSharedStore runs the suite twice at once on one store: the session ids
// of one run must not meet those of the other.
func TestSharedStore(t *testing.T) {
	store := newMemStore(bugNone)
	t.Run("group", func(t *testing.T) {
		for _, name := range []string{"first", "second"} {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				sessiontest.Run(t, store.open)
			})
		}
	})
	if n := store.count(); n != 0 {
		t.Errorf("after two passing runs the store holds %d sessions, want 0", n)
	}
}

const brokenEnv = "SESSIONTEST_BROKEN"

// TestBrokenHelper runs the suite against the memStore variant named by
// SESSIONTEST_BROKEN. TestBroken runs it in a subprocess.
func TestBrokenHelper(t *testing.T) {
	b := bug(os.Getenv(brokenEnv))
	if b == "" {
		t.Skip("run by TestBroken, with " + brokenEnv + " set")
	}
	store := newMemStore(b)
	sessiontest.Run(t, store.open)
}

// brokenCases pairs each broken variant with the subtests that must catch it.
var brokenCases = []struct {
	bug      bug
	caughtBy []string
}{
	{bugNewestFirst, []string{"Order/WithinBatch"}},
	{bugLimitOldest, []string{"Limit/One"}},
	{bugNegativeLimit, []string{"Limit/Negative"}},
	{bugLimitOverCount, []string{"Limit/MoreThanCount"}},
	{bugPartialInvalid, []string{"InvalidItem/Array"}},
	{bugAcceptsNonObject, []string{"InvalidItem/Array"}},
	{bugEmptyAddError, []string{"EmptyAddItems/NewSession"}},
	{bugPopNoRemove, []string{"PopItem/Newest"}},
	{bugPopOldest, []string{"PopItem/Newest"}},
	{bugPopEmptyError, []string{"PopItem/EmptySession"}},
	{bugPopRace, []string{"Concurrency/PopItem", "Concurrency/PopItemWhileAdding"}},
	{bugIgnoresBadID, []string{"InvalidSessionID/Empty"}},
	{bugCutsID, []string{"InvalidSessionID/TooLong256Bytes"}},
	{bugNoCompact, []string{"RoundTrip/WhiteSpace"}},
	{bugReencode, []string{"RoundTrip/HTMLCharacters"}},
	{bugDropsNULEscape, []string{"RoundTrip/EscapedControlCharacters"}},
	{bugItemSizeLimit, []string{"RoundTrip/Big"}},
	{bugBatchSizeLimit, []string{"Order/LargeBatch"}},
	{bugClearAll, []string{"Isolation/AddPopClear"}},
	{bugClearLike, []string{"Isolation/SimilarIDs"}},
	{bugCaseInsensitive, []string{"Isolation/SimilarIDs"}},
	{bugSeparateHandles, []string{"TwoHandles"}},
	{bugInterleave, []string{"Concurrency/AddItems"}},
	{bugFirstWriteRace, []string{"Concurrency/FirstWrite"}},
	{bugIgnoresContext, []string{"Context/Canceled"}},
	{bugWrongCtxError, []string{"Context/DeadlineExceeded"}},
	{bugPartialOnCancel, []string{"Context/AddItemsCanceledMidway"}},
	{bugClearOnCancel, []string{"Context/ClearSessionCanceledMidway"}},
	{bugUnknownGetError, []string{"UnknownSession"}},
	{bugClearUnknownErr, []string{"ClearSession/UnknownSession"}},
	{bugAliasInput, []string{"Ownership/AddItemsCopiesInput"}},
	{bugAliasOutput, []string{"Ownership/GetItemsReturnsCopies"}},
	{bugBareErrors, []string{"InvalidItem/Array", "InvalidSessionID/Empty"}},
}

// TestBroken checks that the suite fails each broken variant, in the subtest
// meant to catch it. Run takes a *testing.T, so each variant runs in a
// subprocess: this test binary, running TestBrokenHelper.
func TestBroken(t *testing.T) {
	t.Run("control", func(t *testing.T) {
		t.Parallel()
		out, err := runHelper(t, bugNone)
		if err != nil {
			t.Fatalf("the suite failed the correct implementation in a subprocess: %v\n%s", err, out)
		}
		if !strings.Contains(out, "--- PASS: TestBrokenHelper ") {
			t.Fatalf("the subprocess did not run TestBrokenHelper:\n%s", out)
		}
	})
	for _, c := range brokenCases {
		t.Run(string(c.bug), func(t *testing.T) {
			t.Parallel()
			out, err := runHelper(t, c.bug)
			var exit *exec.ExitError
			if !errors.As(err, &exit) {
				t.Fatalf("the suite passed the %q variant, want it to fail in %s (err %v)\n%s", c.bug, strings.Join(c.caughtBy, ", "), err, out)
			}
			for _, name := range c.caughtBy {
				want := "--- FAIL: TestBrokenHelper/" + name + " ("
				if !strings.Contains(out, want) {
					t.Errorf("the suite failed the %q variant, but not in %s: no line %q in\n%s", c.bug, name, want, failLines(out))
				}
			}
		})
	}
}

// runHelper runs TestBrokenHelper on the variant b in a subprocess and
// returns its output.
func runHelper(t *testing.T, b bug) (string, error) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestBrokenHelper$", "-test.count=1", "-test.v", "-test.timeout=5m")
	cmd.Env = append(os.Environ(), brokenEnv+"="+string(b))
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// failLines returns the failure lines of a test output, or all of it when
// it has none (a panic or a timeout).
func failLines(out string) string {
	var b strings.Builder
	for line := range strings.Lines(out) {
		if strings.Contains(line, "--- FAIL") {
			b.WriteString(line)
		}
	}
	if b.Len() == 0 {
		return out
	}
	return b.String()
}
