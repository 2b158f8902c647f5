//go:build !race

package bufpool

import "testing"

func TestGetPutNoAlloc(t *testing.T) {
	for _, n := range []int{1, 4096, 16393, 1 << 20} {
		Put(Get(n)) // warm
		if a := testing.AllocsPerRun(1000, func() { Put(Get(n)) }); a != 0 {
			t.Errorf("Get/Put(%d): %v allocs/op, want 0", n, a)
		}
	}
}
