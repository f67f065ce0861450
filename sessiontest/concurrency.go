package sessiontest

import (
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"testing"

	"github.com/lakesession/lakesession"
)

// testConcurrency checks that concurrent calls on one session keep batches
// whole and in order, never return an item twice, and that concurrent first
// writers to a new session all succeed.
func (s *suite) testConcurrency(t *testing.T) {
	t.Run("AddItems", func(t *testing.T) {
		const writers, size = 32, 5
		s.checkConcurrentAdds(t, "conc-add", writers, size, true, true)
	})
	t.Run("FirstWrite", func(t *testing.T) {
		const writers, size = 20, 2
		s.checkConcurrentAdds(t, "conc-first", writers, size, false, false)
	})
	t.Run("PopItem", func(t *testing.T) {
		s.checkConcurrentPops(t, 50, 50)
	})
	t.Run("PopItemMoreCallsThanItems", func(t *testing.T) {
		s.checkConcurrentPops(t, 10, 20)
	})
	t.Run("PopItemWhileAdding", func(t *testing.T) {
		s.checkPopWhileAdding(t, 8, 4, 20)
	})
}

// batchItem is the item that writer w adds at position seq of its batch.
func batchItem(w, seq int) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"role":"user","content":"batch item","writer":%d,"seq":%d}`, w, seq))
}

// writerBatch returns the batch of size items that writer w adds.
func writerBatch(w, size int) []json.RawMessage {
	batch := make([]json.RawMessage, size)
	for i := range batch {
		batch[i] = batchItem(w, i)
	}
	return batch
}

// checkConcurrentAdds has writers goroutines each add one batch of size
// items to one session at once, each through a handle of its own. With
// existing set the session has items before; with watch set a reader checks
// while they run that it only ever sees whole batches.
func (s *suite) checkConcurrentAdds(t *testing.T, label string, writers, size int, existing, watch bool) {
	id := s.newID(label)
	handles := make([]lakesession.Session, writers+1)
	for i := range handles {
		handles[i] = s.openSession(t, id)
	}
	var before []json.RawMessage
	if existing {
		before = items("before", 1, 2)
		add(t, handles[0], before)
	}
	ctx := t.Context()

	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for w := range writers {
		batch := writerBatch(w, size)
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[w] = handles[w].AddItems(ctx, batch)
		}()
	}

	// The reader runs until every writer is done.
	writersDone := make(chan struct{})
	readerDone := make(chan struct{})
	var readerErr error
	reads := 0
	go func() {
		defer close(readerDone)
		if !watch {
			return
		}
		<-start
		for {
			got, err := handles[writers].GetItems(ctx, 0)
			reads++
			if err != nil {
				readerErr = fmt.Errorf("GetItems(0) while writers ran: %w", err)
				return
			}
			if len(got) < len(before) || diffItems(got[:len(before)], before) != "" {
				readerErr = fmt.Errorf("GetItems(0) while writers ran: the first items changed: %s", list(got))
				return
			}
			if err := checkBatches(got[len(before):], writers, size, false); err != nil {
				readerErr = fmt.Errorf("GetItems(0) while writers ran saw part of a batch: %w", err)
				return
			}
			select {
			case <-writersDone:
				return
			default:
			}
		}
	}()

	close(start)
	wg.Wait()
	close(writersDone)
	<-readerDone

	for w, err := range errs {
		if err != nil {
			t.Errorf("writer %d: AddItems(%d items) on session %s: %v", w, size, showID(id), err)
		}
	}
	if readerErr != nil {
		t.Errorf("session %s, after %d reads: %v", showID(id), reads, readerErr)
	}
	if t.Failed() {
		t.FailNow()
	}
	got := get(t, handles[0], 0)
	if len(got) != len(before)+writers*size {
		t.Fatalf("GetItems(0) on session %s after %d concurrent AddItems of %d items: got %d items, want %d: %s",
			showID(id), writers, size, len(got), len(before)+writers*size, list(got))
	}
	if diff := diffItems(got[:len(before)], before); diff != "" {
		t.Fatalf("GetItems(0) on session %s: the items added before the writers changed: %s", showID(id), diff)
	}
	if err := checkBatches(got[len(before):], writers, size, true); err != nil {
		t.Fatalf("GetItems(0) on session %s after %d concurrent AddItems of %d items: %v\nitems: %s",
			showID(id), writers, size, err, list(got))
	}
}

// checkBatches checks that got is a sequence of whole batches made by
// batchItem, each in its order and present once. With complete set every one
// of the writers' batches must be there.
func checkBatches(got []json.RawMessage, writers, size int, complete bool) error {
	return checkBatchSequence(got, writers, size, complete, false)
}

// checkBatchSequence is checkBatches; with truncated set a batch may lack
// its last items (PopItem took them).
func checkBatchSequence(got []json.RawMessage, writers, size int, complete, truncated bool) error {
	seen := make(map[int]bool)
	cur, next := -1, 0 // the writer whose batch is being read, and its next seq
	for i, raw := range got {
		var it struct {
			Writer *int `json:"writer"`
			Seq    *int `json:"seq"`
		}
		if err := json.Unmarshal(raw, &it); err != nil || it.Writer == nil || it.Seq == nil {
			return fmt.Errorf("item %d is not one of the batch items: %s", i, short(raw))
		}
		w, seq := *it.Writer, *it.Seq
		if w < 0 || w >= writers || seq < 0 || seq >= size {
			return fmt.Errorf("item %d is not one of the batch items: %s", i, short(raw))
		}
		if cur >= 0 && next < size && (!truncated || w == cur || seq != 0) {
			if w != cur || seq != next {
				return fmt.Errorf("item %d is %s, want item %d of writer %d's batch: batches interleave or are out of order", i, short(raw), next, cur)
			}
			next++
			continue
		}
		if seq != 0 {
			return fmt.Errorf("item %d is %s, want the first item of a batch", i, short(raw))
		}
		if seen[w] {
			return fmt.Errorf("item %d: writer %d's batch appears twice", i, w)
		}
		seen[w] = true
		cur, next = w, 1
	}
	if cur >= 0 && next < size && !truncated {
		return fmt.Errorf("writer %d's batch ends after %d of %d items", cur, next, size)
	}
	if complete && len(seen) != writers {
		return fmt.Errorf("%d of %d batches are there", len(seen), writers)
	}
	return nil
}

// checkConcurrentPops adds n items to a session and has calls goroutines pop
// one item each at once, each through a handle of its own: every item must be
// returned exactly once and the session left empty.
func (s *suite) checkConcurrentPops(t *testing.T, n, calls int) {
	id := s.newID("conc-pop")
	handles := make([]lakesession.Session, calls)
	for i := range handles {
		handles[i] = s.openSession(t, id)
	}
	want := items("pop", 1, n)
	add(t, handles[0], want[:n/2])
	add(t, handles[0], want[n/2:])
	ctx := t.Context()

	start := make(chan struct{})
	var wg sync.WaitGroup
	got := make([]json.RawMessage, calls)
	errs := make([]error, calls)
	for i := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			got[i], errs[i] = handles[i].PopItem(ctx)
		}()
	}
	close(start)
	wg.Wait()

	for i, err := range errs {
		if err != nil {
			t.Errorf("PopItem call %d on session %s: %v", i, showID(id), err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	var popped []string
	for _, it := range got {
		if it != nil {
			popped = append(popped, string(it))
		}
	}
	sort.Strings(popped)
	for i := 1; i < len(popped); i++ {
		if popped[i] == popped[i-1] {
			t.Fatalf("%d concurrent PopItem calls on session %s returned %s more than once", calls, showID(id), short([]byte(popped[i])))
		}
	}
	wantSorted := make([]string, n)
	for i, it := range want {
		wantSorted[i] = string(it)
	}
	sort.Strings(wantSorted)
	if len(popped) != n {
		t.Fatalf("%d concurrent PopItem calls on session %s of %d items returned %d items, want %d (the others (nil, nil))",
			calls, showID(id), n, len(popped), n)
	}
	for i := range popped {
		if popped[i] != wantSorted[i] {
			t.Fatalf("%d concurrent PopItem calls on session %s returned %s, which was never added", calls, showID(id), short([]byte(popped[i])))
		}
	}
	wantItems(t, handles[0], 0, nil)
	wantPop(t, handles[0], nil)
}

// checkPopWhileAdding has writers goroutines each add a batch of size items
// to a session of ten items while poppers goroutines each pop one: no item
// may be lost or returned twice, and what is left must be in order.
func (s *suite) checkPopWhileAdding(t *testing.T, writers, size, poppers int) {
	id := s.newID("conc-pop-add")
	handles := make([]lakesession.Session, writers+poppers)
	for i := range handles {
		handles[i] = s.openSession(t, id)
	}
	before := items("before", 1, 10)
	add(t, handles[0], before)
	ctx := t.Context()

	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make([]error, writers+poppers)
	popped := make([]json.RawMessage, poppers)
	for w := range writers {
		batch := writerBatch(w, size)
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[w] = handles[w].AddItems(ctx, batch)
		}()
	}
	for p := range poppers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			popped[p], errs[writers+p] = handles[writers+p].PopItem(ctx)
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err == nil {
			continue
		}
		if i < writers {
			t.Errorf("writer %d: AddItems(%d items) on session %s: %v", i, size, showID(id), err)
		} else {
			t.Errorf("PopItem call %d on session %s: %v", i-writers, showID(id), err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// Every item added is either popped once or still there, once.
	left := get(t, handles[0], 0)
	want := make(map[string]int)
	for _, it := range before {
		want[string(it)]++
	}
	for w := range writers {
		for i := range size {
			want[string(batchItem(w, i))]++
		}
	}
	var all []json.RawMessage
	for _, it := range popped {
		if it != nil {
			all = append(all, it)
		}
	}
	all = append(all, left...)
	for _, it := range all {
		switch want[string(it)] {
		case 1:
			want[string(it)] = 0
		case 0:
			t.Fatalf("session %s: %s was popped or left twice, or never added\npopped: %s\nleft: %s",
				showID(id), short(it), list(popped), list(left))
		}
	}
	for it, n := range want {
		if n != 0 {
			t.Fatalf("session %s: %s was lost: neither popped nor left\npopped: %s\nleft: %s",
				showID(id), short([]byte(it)), list(popped), list(left))
		}
	}

	// What is left is the first items added before, then batches in order,
	// some of them without the last items that PopItem took.
	k := 0
	for k < len(left) && k < len(before) && string(left[k]) == string(before[k]) {
		k++
	}
	if err := checkBatchSequence(left[k:], writers, size, false, true); err != nil {
		t.Fatalf("session %s after concurrent AddItems and PopItem: %v\nleft: %s", showID(id), err, list(left))
	}
}
