package prom

import (
	"bytes"
	"strings"
	"testing"
)

func TestHistogramText(t *testing.T) {
	h := New("req_seconds", "Request time.", []float64{0.1, 1})
	for _, v := range []float64{0.05, 0.1, 0.5, 2, 3} {
		h.Observe(v)
	}
	var buf bytes.Buffer
	h.WritePrometheus(&buf)
	want := `# HELP req_seconds Request time.
# TYPE req_seconds histogram
req_seconds_bucket{le="0.1"} 2
req_seconds_bucket{le="1"} 3
req_seconds_bucket{le="+Inf"} 5
req_seconds_sum 5.65
req_seconds_count 5
`
	if got := buf.String(); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	if h.Count() != 5 {
		t.Fatalf("Count %d", h.Count())
	}
	if strings.Count(buf.String(), "\n") != 7 {
		t.Fatal("line count")
	}
}

func TestObserveAllocs(t *testing.T) {
	h := New("x", "x", DurationBuckets)
	if n := testing.AllocsPerRun(100, func() { h.Observe(0.3) }); n != 0 {
		t.Fatalf("Observe allocates %v", n)
	}
}
