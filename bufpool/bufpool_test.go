package bufpool

import (
	"sync"
	"sync/atomic"
	"testing"
)

func TestClassSizes(t *testing.T) {
	cases := []struct{ n, want int }{
		{0, 512 + Slack},
		{1, 512 + Slack},
		{512 + Slack, 512 + Slack},
		{512 + Slack + 1, 1024 + Slack},
		{16384 + 9, 16384 + Slack},
		{16384 + Slack, 16384 + Slack},
		{16384 + Slack + 1, 32768 + Slack},
		{MaxSize, MaxSize},
		{MaxSize + 1, MaxSize + 1},
	}
	for _, c := range cases {
		if got := ClassSize(c.n); got != c.want {
			t.Errorf("ClassSize(%d) = %d, want %d", c.n, got, c.want)
		}
		b := Get(c.n)
		if len(b.B) != c.want || cap(b.B) != c.want {
			t.Errorf("Get(%d): len %d cap %d, want %d", c.n, len(b.B), cap(b.B), c.want)
		}
		Put(b)
	}
}

func TestPutRestoresLength(t *testing.T) {
	b := Get(100)
	b.B = b.B[:3]
	Put(b)
	for i := 0; i < 10; i++ {
		b := Get(100)
		if len(b.B) != 512+Slack {
			t.Fatalf("len after reuse = %d", len(b.B))
		}
		Put(b)
	}
}

func TestPutNil(t *testing.T) { Put(nil) }

func TestShareLastPutReturns(t *testing.T) {
	var tally atomic.Int32
	b := Get(4096)
	b.Track(&tally)
	if !b.Tracked() || tally.Load() != 1 {
		t.Fatalf("Track: tracked %v, tally %d", b.Tracked(), tally.Load())
	}
	b.Share()
	b.Share()
	if !b.Shared() {
		t.Fatal("Shared() = false with three references")
	}
	Put(b)
	Put(b)
	if tally.Load() != 1 {
		t.Fatalf("tally %d after two of three Puts, want 1 (still out)", tally.Load())
	}
	if b.Shared() {
		t.Fatal("Shared() = true with one reference left")
	}
	Put(b)
	if tally.Load() != 0 {
		t.Fatalf("tally %d after the last Put, want 0", tally.Load())
	}
	if b.Tracked() {
		t.Fatal("a buffer back in the pool is still tracked")
	}
}

// TestShareConcurrentPuts: many holders dropping their references at once
// return the buffer exactly once (the race detector and the tally check it).
func TestShareConcurrentPuts(t *testing.T) {
	for range 200 {
		var tally atomic.Int32
		b := Get(1024)
		b.Track(&tally)
		const holders = 8
		for range holders - 1 {
			b.Share()
		}
		var wg sync.WaitGroup
		for range holders {
			wg.Add(1)
			go func() { defer wg.Done(); Put(b) }()
		}
		wg.Wait()
		if n := tally.Load(); n != 0 {
			t.Fatalf("tally %d after every holder put, want 0", n)
		}
	}
}
