package prom

import (
	"fmt"
	"sync/atomic"

	"github.com/VictoriaMetrics/metrics"
)

// StatusCounters counts responses by HTTP status code as the family
// name{status="N"}; a code's counter is made on its first use and cached.
// Codes outside 100..599 count as status="0".
type StatusCounters struct {
	set      *metrics.Set
	name     string
	counters [600]atomic.Pointer[metrics.Counter]
}

// NewStatusCounters returns the family name in set.
func NewStatusCounters(set *metrics.Set, name string) *StatusCounters {
	return &StatusCounters{set: set, name: name}
}

// Inc counts one response with status code.
func (sc *StatusCounters) Inc(code int) {
	if code < 100 || code >= len(sc.counters) {
		code = 0
	}
	ctr := sc.counters[code].Load()
	if ctr == nil {
		ctr = sc.set.GetOrCreateCounter(fmt.Sprintf(`%s{status="%d"}`, sc.name, code))
		sc.counters[code].Store(ctr)
	}
	ctr.Inc()
}
