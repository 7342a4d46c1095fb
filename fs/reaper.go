package fs

import (
	"runtime"
	"sync"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
)

// reaper tells the kernel of sessions that have ended that their names and
// every entry inside are gone (NOTIFY_DELETE), and takes the entries out of
// go-fuse's tree. The end itself has freed the bytes and hidden the names
// already; this is the rest, and most of the work.
//
// It runs on a goroutine of its own, so that the expiry loop is free to
// end the next session at once, and it leaves the machine to others: sent
// back to back for thousands of sessions, notifications made every stat
// and readdir of the mount ten times slower (p99 0.5 ms to 5 ms), even
// those the kernel answers from its cache. So after each batch it rests as
// long as the batch took, taking half of a CPU at most.
type reaper struct {
	wake chan struct{} // holds a token while the queue may have work
	stop chan struct{} // closed by close
	done chan struct{} // closed when the loop has returned

	mu sync.Mutex
	// Guarded by mu:
	queue []endedSession
	busy  bool // the loop is working on sessions it took from the queue
}

// endedSession is what the kernel has yet to hear of a session that ended.
type endedSession struct {
	root *gofs.Inode // nil if the session had left the root already
	name string
	dir  *gofs.Inode
}

func newReaper() *reaper {
	r := &reaper{wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go r.loop()
	return r
}

// add queues sessions that have ended.
func (r *reaper) add(ended []endedSession) {
	if len(ended) == 0 {
		return
	}
	r.mu.Lock()
	r.queue = append(r.queue, ended...)
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// idle says whether the kernel has heard of every session queued so far.
func (r *reaper) idle() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.queue) == 0 && !r.busy
}

func (r *reaper) loop() {
	defer close(r.done)
	for {
		select {
		case <-r.stop:
			return
		case <-r.wake:
		}
		r.mu.Lock()
		batch := r.queue
		r.queue = nil
		r.busy = true
		r.mu.Unlock()
		p := pacer{rest: r.stop} // its rests measure this batch's work only
		for _, e := range batch {
			select {
			case <-r.stop:
				return // unmounted: there is no kernel left to tell
			default:
			}
			e.tellKernel(&p)
		}
		r.mu.Lock()
		r.busy = false
		r.mu.Unlock()
	}
}

// close stops the loop and waits for it; what is still queued is dropped,
// since the mount is gone.
func (r *reaper) close() {
	close(r.stop)
	<-r.done
}

// tellKernel takes the session's entries out of go-fuse's tree and tells
// the kernel that the session and they are gone: the session first, since
// that is what programs wait for (spoolfs session rm polls for it).
func (e endedSession) tellKernel(p *pacer) {
	if e.root != nil {
		e.root.NotifyDelete(e.name, e.dir)
		p.step()
	}
	for _, r := range detachEntries(e.dir, p) {
		r.parent.NotifyDelete(r.name, r.child)
		p.step()
	}
}

// pacer makes a long run of work outside requests give way to them. The
// daemon often runs Go code on one CPU (GOMAXPROCS=1 while one process
// calls it), and there a goroutine that neither blocks nor yields keeps
// every request waiting until the scheduler preempts it: ten thousand
// sessions ending at once kept a request waiting while 200 to 800 of them
// ended (TestSessionMassExpiryGivesWay), and stat and readdir up to 180 ms
// (BenchmarkSessionMassExpiry). It yields after every paceEvery steps, and
// if rest is set also pauses as long as those steps took, until rest closes.
type pacer struct {
	rest  <-chan struct{}
	steps int
	since time.Time // when the current run of steps began
}

// paceEvery is how many steps (a session ended, a node freed, an entry
// detached, a notification sent: microseconds each) run between yields.
const paceEvery = 16

// step counts a piece of work done, and gives way after every paceEvery.
func (p *pacer) step() {
	if p.steps == 0 {
		p.since = time.Now()
	}
	p.steps++
	if p.steps%paceEvery != 0 {
		return
	}
	runtime.Gosched()
	if p.rest != nil {
		pause := time.NewTimer(time.Since(p.since))
		select {
		case <-pause.C:
		case <-p.rest:
			pause.Stop()
		}
	}
	p.since = time.Now()
}
