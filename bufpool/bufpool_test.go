package bufpool

import "testing"

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
