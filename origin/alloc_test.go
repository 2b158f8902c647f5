//go:build !race

package origin

import (
	"io"
	"testing"
)

// TestDoNoAlloc: a request whose answer arrives whole with its head costs
// no allocation once the pools are warm, and a streamed answer costs one
// (its body reader, see responseBody).
func TestDoNoAlloc(t *testing.T) {
	addr := startFastHello(t)
	c := newClient(t, Config{URL: "http://" + addr})
	req, resp, release := helloExchange()
	defer release()
	doOne := func() {
		if err := c.Do(req, resp); err != nil {
			t.Fatal(err)
		}
		if len(resp.Body()) != 12 {
			t.Fatalf("%q", resp.Body())
		}
	}
	for range 10 {
		doOne()
	}
	if a := testing.AllocsPerRun(1000, doOne); a != 0 {
		t.Errorf("Do, body with the head: %v allocs/op, want 0", a)
	}

	req.SetRequestURI("/64k")
	buf := make([]byte, 32<<10)
	doStream := func() {
		if err := c.Do(req, resp); err != nil {
			t.Fatal(err)
		}
		bs, n := resp.BodyStream(), 0
		for {
			k, err := bs.Read(buf)
			n += k
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if n != 64<<10 {
			t.Fatal(n)
		}
		resp.CloseBodyStream()
	}
	for range 10 {
		doStream()
	}
	if a := testing.AllocsPerRun(200, doStream); a > 1 {
		t.Errorf("Do, streamed body: %v allocs/op, want at most 1", a)
	}
}
