//go:build !linux

package bench

import "testing"

// pinThread pins nothing where CPU affinity is not available.
func pinThread(b *testing.B, cpu int) func() {
	if cpu >= 0 {
		b.Skip("CPU pinning needs Linux")
	}
	return func() {}
}
