package main

import (
	"context"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spoolfs/spoolfs/fs/proc"
)

// procTuner sets how many CPUs run the daemon's Go code (GOMAXPROCS) from
// which processes are calling it.
//
// Every FUSE request is a round trip in which the caller sleeps until the
// daemon answers, and on this kind of machine (a 2-CPU VM) the wakeups
// that hand a request across CPUs cost more than serving it. With one
// CPU for Go code, one busy caller gets about twice the small operations
// per second (creating 4 KiB files: 7k -> 12-15k/s; tar x of Go's source
// tree 1.7x faster; random 4 KiB writes 1.3-1.45x). With several callers
// at once the opposite holds: with one CPU, requests wait for each other
// and for the disk syscalls of spilled files (four random writers: -25%;
// two direct readers: -40%). So the tuner counts, in windows of 0.2 s, how
// many of the requests each process made: when a second process made at
// least an eighth of them, callers are running in parallel and the daemon
// gets every CPU the runtime gave it at start; after 0.6 s of one caller,
// or 0.2 s of none, it goes back to one. (Processes, not threads: a Go
// program, say, makes its calls one after another from whichever of its
// threads. And shares, not how often the caller changes: on two CPUs two
// busy callers mostly take turns, so their requests come in long runs.)
//
// Work of the daemon's own that waits for the disk off the request path
// (the spill pool giving space back: hole punches, closes of large spill
// files) counts as a second caller: on one CPU a system call that blocks
// keeps it until the runtime takes it back, and requests wait meanwhile
// (an rm -rf of spilled files over io_uring: 1.0-1.16 s on one CPU,
// 0.57-0.6 s on two, 0.47 s for the same tree in RAM). The first such work
// raises GOMAXPROCS at once; it goes back down as above, once a few
// windows have passed without any.
//
// GOMAXPROCS set in the environment turns the tuner off. Callers the kernel
// cannot name in the daemon's PID namespace (a daemon in a container,
// serving processes outside it) come with PID 0 and are not counted, so
// such a daemon stays on one CPU; set GOMAXPROCS there.
type procTuner struct {
	most int // the runtime's own choice at start: CPUs, or the cgroup's share

	requests   atomic.Int64
	runLen     atomic.Int64  // requests of the current thread since it took over
	lastThread atomic.Uint32 // thread of the latest request
	parked     atomic.Bool   // the loop waits for a request, not for its ticker
	wake       chan struct{}
	// diskWorkSeen: diskWork was called in this window. raised: the loop
	// has GOMAXPROCS at most (diskWork need not wake it).
	diskWorkSeen atomic.Bool
	raised       atomic.Bool
	diskWake     chan struct{}
	processOf    func(tid uint32) uint32

	mu sync.Mutex
	// Guarded by mu:
	processes map[uint32]uint32 // thread -> process
	current   uint32            // process of the current run
	shares    map[uint32]int64  // requests per process in this window, runs ended so far

	// Owned by the loop:
	procs  int // what GOMAXPROCS is now
	serial int // windows in a row that saw one caller at a time
}

const (
	tuneWindow = 200 * time.Millisecond
	// A window decides only with this many requests: fewer say little.
	tuneMinRequests = 200
	// Windows of one caller at a time before going back to one CPU.
	tuneSerialWindows = 3
)

// newProcTuner sets GOMAXPROCS to 1 and returns the tuner that will raise
// it; or it returns nil, and leaves GOMAXPROCS alone, when there is nothing
// to tune: one CPU, or GOMAXPROCS chosen by the user.
func newProcTuner() *procTuner {
	if _, set := os.LookupEnv("GOMAXPROCS"); set {
		return nil
	}
	most := runtime.GOMAXPROCS(0)
	if most < 2 {
		return nil
	}
	runtime.GOMAXPROCS(1)
	return newTuner(most, 1, proc.ThreadGroup)
}

func newTuner(most, procs int, processOf func(tid uint32) uint32) *procTuner {
	t := &procTuner{most: most, procs: procs, wake: make(chan struct{}, 1), diskWake: make(chan struct{}, 1), processOf: processOf}
	t.raised.Store(procs == most)
	return t
}

// diskWork is spill.Config.DiskWork: the daemon is about to wait for the
// disk outside any request. It never blocks.
func (t *procTuner) diskWork() {
	t.diskWorkSeen.Store(true)
	if !t.raised.Load() {
		select {
		case t.diskWake <- struct{}{}:
		default:
		}
	}
}

// setProcs sets GOMAXPROCS to n; only the loop calls it.
func (t *procTuner) setProcs(n int) {
	if n != t.procs {
		runtime.GOMAXPROCS(n)
		t.procs = n
	}
	t.raised.Store(n == t.most)
}

// observe is on every request's path: two atomics while the same thread
// calls, and a lock and a map lookup when another thread takes over.
func (t *procTuner) observe(caller uint32) {
	if caller == 0 { // the kernel's own requests (FORGET) say nothing
		return
	}
	t.requests.Add(1)
	if t.lastThread.Swap(caller) != caller {
		t.takeOver(caller)
	}
	t.runLen.Add(1)
	if t.parked.Load() && t.parked.CompareAndSwap(true, false) {
		select {
		case t.wake <- struct{}{}:
		default:
		}
	}
}

// takeOver ends the current run: its requests go to its process's share.
func (t *procTuner) takeOver(tid uint32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.processLocked(tid)
	if p != t.current {
		t.creditLocked()
		t.current = p
	}
}

func (t *procTuner) creditLocked() {
	if n := t.runLen.Swap(0); n > 0 && t.current != 0 {
		if t.shares == nil {
			t.shares = make(map[uint32]int64)
		}
		t.shares[t.current] += n
	}
}

// window returns the requests since the last call and how many of them
// the second busiest process made, and starts a new window.
func (t *procTuner) window() (reqs, second int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.creditLocked()
	var first int64
	for _, n := range t.shares {
		switch {
		case n > first:
			first, second = n, first
		case n > second:
			second = n
		}
	}
	clear(t.shares)
	return t.requests.Swap(0), second
}

// maxThreads bounds the thread -> process cache; it starts afresh when
// full, which also forgets threads that have exited.
const maxThreads = 1024

// processLocked is the process of thread tid, from /proc the first time.
func (t *procTuner) processLocked(tid uint32) uint32 {
	if p, ok := t.processes[tid]; ok {
		return p
	}
	p := t.processOf(tid)
	if p == 0 {
		p = tid // gone already: count it as its own process
	}
	if t.processes == nil || len(t.processes) >= maxThreads {
		t.processes = make(map[uint32]uint32)
	}
	t.processes[tid] = p
	return p
}

// decide is what GOMAXPROCS should be after a window with reqs requests,
// second of them from the second busiest process.
func (t *procTuner) decide(reqs, second int64) int {
	if reqs < tuneMinRequests {
		return t.procs
	}
	if second*8 >= reqs { // callers in parallel
		t.serial = 0
		return t.most
	}
	t.serial++
	if t.serial >= tuneSerialWindows {
		return 1
	}
	return t.procs
}

// run tunes until ctx is done. After a window with no requests it goes
// back to one CPU and sleeps until a request comes, so that an idle daemon
// does not wake up five times a second.
func (t *procTuner) run(ctx context.Context) {
	tick := time.NewTicker(tuneWindow)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.diskWake:
			t.serial = 0
			t.setProcs(t.most)
			continue
		case <-tick.C:
		}
		reqs, second := t.window()
		if t.diskWorkSeen.Swap(false) {
			t.serial = 0
			t.setProcs(t.most)
			continue
		}
		if reqs == 0 {
			// Idle: whoever comes next is most likely alone, and a
			// burst from one process (a dd, a cp) is over before three
			// windows have passed; parallel callers are seen in one.
			t.setProcs(1)
			t.serial = 0
			tick.Stop()
			t.parked.Store(true)
			select {
			case <-ctx.Done():
				return
			case <-t.wake:
			case <-t.diskWake:
				t.parked.Store(false)
				t.setProcs(t.most)
			}
			tick.Reset(tuneWindow)
			continue
		}
		t.setProcs(t.decide(reqs, second))
	}
}
