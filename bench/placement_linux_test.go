//go:build linux

package bench

import (
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// BenchmarkPlacement is Bulk1M's bare TCP copy with its two ends pinned:
// both to one CPU, and to two different CPUs. Where moving bytes between
// CPUs is slow (virtual machines), Bulk1M/tcpcopy's figure depends on where
// the scheduler happens to put the writer and the reader; these two bound
// it from both sides (see BENCHMARKS.md).
func BenchmarkPlacement(b *testing.B) {
	b.Run("tcpcopy/one-cpu", func(b *testing.B) { tcpCopy(b, 0, 0) })
	b.Run("tcpcopy/two-cpus", func(b *testing.B) {
		if runtime.NumCPU() < 2 {
			b.Skip("needs two CPUs")
		}
		tcpCopy(b, 0, 1)
	})
}

// pinThread locks the calling goroutine to its thread and that thread to
// cpu (-1: no pinning); the returned function undoes both. A failure is
// reported with Error: it may run on a goroutine other than the benchmark's.
func pinThread(b *testing.B, cpu int) func() {
	if cpu < 0 {
		return func() {}
	}
	runtime.LockOSThread()
	var old, set unix.CPUSet
	set.Set(cpu)
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		b.Error(err) // may run on a goroutine of its own: no Fatal
		return runtime.UnlockOSThread
	}
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		b.Error(err)
		return runtime.UnlockOSThread
	}
	return func() {
		unix.SchedSetaffinity(0, &old)
		runtime.UnlockOSThread()
	}
}
