package main

import (
	"context"
	"runtime"
	"testing"
	"time"
)

func TestProcTunerDecide(t *testing.T) {
	tu := &procTuner{most: 4, procs: 4}
	step := func(reqs, switches int64) int {
		tu.procs = tu.decide(reqs, switches)
		return tu.procs
	}
	// One caller at a time: one CPU, but only after a few windows of it.
	for i := range tuneSerialWindows - 1 {
		if got := step(1000, 10); got != 4 {
			t.Fatalf("after %d serial windows: %d CPUs, want still 4", i+1, got)
		}
	}
	if got := step(1000, 10); got != 1 {
		t.Fatalf("after %d serial windows: %d CPUs, want 1", tuneSerialWindows, got)
	}
	// Too few requests to say anything: no change, either way.
	if got := step(tuneMinRequests-1, tuneMinRequests-1); got != 1 {
		t.Fatalf("a quiet window changed GOMAXPROCS to %d", got)
	}
	// Callers in parallel (a second process made an eighth or more of
	// the requests): every CPU at once.
	if got := step(1000, 125); got != 4 {
		t.Fatalf("parallel callers: %d CPUs, want 4", got)
	}
	// A serial window in between restarts the count.
	for range tuneSerialWindows - 1 {
		step(1000, 0)
	}
	step(1000, 400)
	for range tuneSerialWindows - 1 {
		if got := step(1000, 0); got != 4 {
			t.Fatalf("went down to %d before %d serial windows in a row", got, tuneSerialWindows)
		}
	}
}

func TestProcTunerObserve(t *testing.T) {
	// Threads 7 and 17 are one process, 8 another.
	process := map[uint32]uint32{7: 7, 17: 7, 8: 8}
	lookups := 0
	tu := &procTuner{most: 2, procs: 2, wake: make(chan struct{}, 1),
		processOf: func(tid uint32) uint32 { lookups++; return process[tid] }}
	for range 10 {
		tu.observe(7)
		tu.observe(17)
	}
	tu.observe(0) // the kernel's own: ignored
	for range 3 {
		tu.observe(8)
	}
	tu.observe(7)
	if reqs, second := tu.window(); reqs != 24 || second != 3 {
		t.Errorf("window: %d requests, %d from the second busiest process; want 24 and 3", reqs, second)
	}
	if lookups != 3 {
		t.Errorf("%d lookups of a thread's process; want 3, one per thread", lookups)
	}
	// A new window starts empty, and the run that was going on counts in it.
	tu.observe(7)
	if reqs, second := tu.window(); reqs != 1 || second != 0 {
		t.Errorf("next window: %d requests, second %d; want 1 and 0", reqs, second)
	}
	tu.parked.Store(true)
	tu.observe(7)
	select {
	case <-tu.wake:
	default:
		t.Error("a request did not wake the parked loop")
	}
	if tu.parked.Load() {
		t.Error("still parked after the wake")
	}
}

// TestProcTunerRun drives the loop: serial requests bring GOMAXPROCS to 1,
// parallel ones back up, and it is restored at the end of the test.
func TestProcTunerRun(t *testing.T) {
	was := runtime.GOMAXPROCS(0)
	if was < 2 {
		t.Skip("one CPU: nothing to tune")
	}
	t.Cleanup(func() { runtime.GOMAXPROCS(was) })
	tu := &procTuner{most: was, procs: was, wake: make(chan struct{}, 1),
		processOf: func(tid uint32) uint32 { return tid }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { tu.run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	// Each caller in turn makes a run of 100 requests, as busy callers
	// taking turns on the CPUs do.
	feed := func(callers []uint32, until func() bool) bool {
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			for _, c := range callers {
				for range 100 {
					tu.observe(c)
				}
			}
			if until() {
				return true
			}
			time.Sleep(time.Millisecond) // pacing the feed, not waiting for a result
		}
		return false
	}
	if !feed([]uint32{1}, func() bool { return runtime.GOMAXPROCS(0) == 1 }) {
		t.Fatalf("one caller for 10 s: GOMAXPROCS is %d, want 1", runtime.GOMAXPROCS(0))
	}
	if !feed([]uint32{1, 2}, func() bool { return runtime.GOMAXPROCS(0) == was }) {
		t.Fatalf("two callers for 10 s: GOMAXPROCS is %d, want %d", runtime.GOMAXPROCS(0), was)
	}
	// No requests: back to one CPU, asleep; a request wakes it.
	pollFor(t, "an idle tuner to go back to one CPU", func() bool { return runtime.GOMAXPROCS(0) == 1 && tu.parked.Load() })
	if !feed([]uint32{1, 2}, func() bool { return runtime.GOMAXPROCS(0) == was }) {
		t.Fatalf("two callers after an idle time: GOMAXPROCS is %d, want %d", runtime.GOMAXPROCS(0), was)
	}
}

// pollFor polls cond for up to 10 s.
func pollFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// BenchmarkProcTunerObserve is the cost the tuner adds to every request:
// one caller (the fast path), and two callers taking turns in runs of 64.
func BenchmarkProcTunerObserve(b *testing.B) {
	for _, c := range []struct {
		name string
		run  int
	}{{"one-caller", 0}, {"two-callers-runs-of-64", 64}} {
		b.Run(c.name, func(b *testing.B) {
			tu := &procTuner{most: 2, procs: 1, wake: make(chan struct{}, 1),
				processOf: func(tid uint32) uint32 { return tid }}
			b.ReportAllocs()
			caller := uint32(1)
			for i := 0; b.Loop(); i++ {
				if c.run > 0 && i%c.run == 0 {
					caller = 3 - caller
				}
				tu.observe(caller)
			}
		})
	}
}

// TestProcTunerDiskWork: disk work off the request path (the spill pool
// giving space back) raises GOMAXPROCS at once, with or without requests,
// and it goes back to one CPU once the work has stopped.
func TestProcTunerDiskWork(t *testing.T) {
	was := runtime.GOMAXPROCS(0)
	if was < 2 {
		t.Skip("one CPU: nothing to tune")
	}
	t.Cleanup(func() { runtime.GOMAXPROCS(was) })
	runtime.GOMAXPROCS(1)
	tu := newTuner(was, 1, func(tid uint32) uint32 { return tid })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { tu.run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	// Before any request: the loop waits on its ticker, not parked yet.
	tu.diskWork()
	pollFor(t, "disk work to raise GOMAXPROCS", func() bool { return runtime.GOMAXPROCS(0) == was })
	pollFor(t, "the tuner to go back to one CPU after the disk work", func() bool { return runtime.GOMAXPROCS(0) == 1 && tu.parked.Load() })
	// Parked (idle): disk work wakes it.
	tu.diskWork()
	pollFor(t, "disk work to raise GOMAXPROCS of a parked tuner", func() bool { return runtime.GOMAXPROCS(0) == was })
	pollFor(t, "the tuner to go back to one CPU again", func() bool { return runtime.GOMAXPROCS(0) == 1 && tu.parked.Load() })

	// One caller at a time keeps one CPU; with disk work alongside, every CPU.
	for range 100 {
		tu.observe(1)
	}
	tu.diskWork()
	pollFor(t, "disk work beside one caller to raise GOMAXPROCS", func() bool { return runtime.GOMAXPROCS(0) == was })
}
