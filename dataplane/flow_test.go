package dataplane

import "testing"

func TestInflow_TakeAndBatchedUpdates(t *testing.T) {
	var f inflow
	f.init(1 << 20)
	if !f.take(1 << 20) {
		t.Fatal("the whole window must be accepted")
	}
	if f.take(1) {
		t.Fatal("one byte past the window accepted")
	}
	var sent uint32
	for i := 0; i < 64; i++ {
		sent += f.add(16384) // the application reads 1 MiB in 16 KiB steps
	}
	// Credit below a quarter window may stay batched, never more.
	if sent+uint32(f.unsent) != 1<<20 || f.unsent >= 1<<18 || f.avail != int32(sent) {
		t.Fatalf("sent %d, pending %d, avail %d", sent, f.unsent, f.avail)
	}
	var updates int
	f.init(1 << 20)
	for i := 0; i < 64; i++ {
		f.take(16384)
		if f.add(16384) != 0 {
			updates++
		}
	}
	if updates != 4 {
		t.Fatalf("%d WINDOW_UPDATEs for 1 MiB through a 1 MiB window, want 4", updates)
	}
	if f.add(0) != 0 || f.add(-5) != 0 {
		t.Fatal("non-positive credit produced an update")
	}
}

// A small window must still make progress: the update goes out once the
// window runs low, even if the credit is under a quarter of it.
func TestInflow_LowWindowForcesUpdate(t *testing.T) {
	var f inflow
	f.init(100)
	f.take(80)
	if inc := f.add(10); inc != 10 {
		t.Fatalf("avail 20 of 100 and credit 10: increment %d, want 10", inc)
	}
}

func TestOutflow(t *testing.T) {
	var f outflow
	if !f.add(65535) || f.available() != 65535 {
		t.Fatal("initial window")
	}
	f.take(65535)
	if !f.add(-1000) || f.available() != 0 || f.n != -1000 {
		t.Fatal("SETTINGS decrease below zero must be kept as a negative window")
	}
	if !f.add(1<<31 - 1) {
		t.Fatal("-1000 + 2^31-1 fits")
	}
	if f.add(1001) {
		t.Fatal("window past 2^31-1 accepted")
	}
}
