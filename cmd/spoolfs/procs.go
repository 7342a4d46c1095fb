package main

import (
	"context"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
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
// two direct readers: -40%). So the tuner watches the callers: when a
// good share of requests come from a different process than the request
// before them, callers are running in parallel and the daemon gets every
// CPU the runtime gave it at start; after 0.6 s of one caller at a time,
// or 0.2 s of none, it goes back to one. It starts at one: parallel callers are seen within
// a window, and a short burst from one caller (a cp, a tar x) is over in
// about a second. (Processes, not threads: a Go program, say,
// makes its calls one after another from whichever of its threads.)
//
// GOMAXPROCS set in the environment turns the tuner off. Callers the kernel
// cannot name in the daemon's PID namespace (a daemon in a container,
// serving processes outside it) come with PID 0 and are not counted, so
// such a daemon stays on one CPU; set GOMAXPROCS there.
type procTuner struct {
	most int // the runtime's own choice at start: CPUs, or the cgroup's share

	requests    atomic.Int64
	switches    atomic.Int64  // requests from another process than the one before
	lastThread  atomic.Uint32 // thread of the latest request
	lastProcess atomic.Uint32 // and its process
	parked      atomic.Bool   // the loop waits for a request, not for its ticker
	wake        chan struct{}
	processOf   func(tid uint32) uint32

	mu        sync.Mutex
	processes map[uint32]uint32 // thread -> process, guarded by mu

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
	return &procTuner{most: most, procs: 1, wake: make(chan struct{}, 1), processOf: processOfThread}
}

// observe is on every request's path: a few atomics, and a lock and a map
// lookup only when the thread differs from the last request's.
func (t *procTuner) observe(caller uint32) {
	if caller == 0 { // the kernel's own requests (FORGET) say nothing
		return
	}
	t.requests.Add(1)
	if t.lastThread.Swap(caller) != caller {
		if p := t.process(caller); t.lastProcess.Swap(p) != p {
			t.switches.Add(1)
		}
	}
	if t.parked.Load() && t.parked.CompareAndSwap(true, false) {
		select {
		case t.wake <- struct{}{}:
		default:
		}
	}
}

// maxThreads bounds the thread -> process cache; it starts afresh when
// full, which also forgets threads that have exited.
const maxThreads = 1024

// process is the process of thread tid, from /proc the first time.
func (t *procTuner) process(tid uint32) uint32 {
	t.mu.Lock()
	defer t.mu.Unlock()
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
// switches of them from another thread than the one before.
func (t *procTuner) decide(reqs, switches int64) int {
	if reqs < tuneMinRequests {
		return t.procs
	}
	if switches*4 > reqs { // callers in parallel
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
		case <-tick.C:
		}
		reqs, switches := t.requests.Swap(0), t.switches.Swap(0)
		if reqs == 0 {
			// Idle: whoever comes next is most likely alone, and a
			// burst from one process (a dd, a cp) is over before three
			// windows have passed; parallel callers are seen in one.
			if t.procs != 1 {
				runtime.GOMAXPROCS(1)
				t.procs = 1
			}
			t.serial = 0
			tick.Stop()
			t.parked.Store(true)
			select {
			case <-ctx.Done():
				return
			case <-t.wake:
			}
			tick.Reset(tuneWindow)
			continue
		}
		if want := t.decide(reqs, switches); want != t.procs {
			runtime.GOMAXPROCS(want)
			t.procs = want
		}
	}
}
