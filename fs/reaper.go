package fs

import (
	"context"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// reaper tells the kernel of sessions that have ended that their names and
// every entry inside are gone, and takes the entries out of go-fuse's tree.
// The end itself has freed the bytes and hidden the names already; this is
// the rest, and most of the work.
//
// The entries inside go by NOTIFY_DELETE. The session itself is removed
// with rmdir(2) through the mount (remover), as rm -rf would: NOTIFY_DELETE
// shows a watcher of the session IN_DELETE_SELF, but the kernel sends
// IN_DELETE to a watcher of the root only from its own rmdir.
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
	log  *slog.Logger

	root     atomic.Pointer[mountRoot] // nil until Mounted: then sessions go by rmdir
	removing atomic.Pointer[removal]   // the session being removed by rmdir, if any

	// answeringRmdir, set by tests before any session ends, is called
	// by the root's handler of the reaper's RMDIR before it answers.
	answeringRmdir func(name string)

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

// mountRoot is where the mount's root is, as the daemon sees it.
type mountRoot struct {
	dir string
	dev uint64 // its st_dev, which tells it from what may cover it later
}

// removal is the session the reaper is removing with rmdir(2): the root
// answers the requests of that rmdir, and only those, as if the session
// were still there (rootDir.Lookup, rootDir.Rmdir).
type removal struct {
	tid  uint32 // the reaper's thread: the caller of its requests
	name string
	dir  *gofs.Inode
}

func newReaper(log *slog.Logger) *reaper {
	r := &reaper{wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}), log: log}
	go r.loop()
	return r
}

// request returns the removal under way if ctx is a request the reaper's
// own rmdir made, else nil.
func (r *reaper) request(ctx context.Context) *removal {
	rm := r.removing.Load()
	if rm == nil {
		return nil
	}
	if caller, ok := fuse.FromContext(ctx); !ok || caller.Pid != rm.tid {
		return nil
	}
	return rm
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
	// The kernel names the caller of a request by its thread: the root
	// knows the reaper's rmdir by it.
	tid, unlock := lockThread()
	defer unlock()
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
		if !r.tellKernelAll(batch, tid) {
			return // unmounted: there is no kernel left to tell
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

// tellKernelAll tells the kernel of a batch of ended sessions, from the
// thread tid, and says false if the reaper was stopped meanwhile. The
// sessions are removed through one remover, which lets go of the mount
// when the batch is done.
func (r *reaper) tellKernelAll(batch []endedSession, tid uint32) bool {
	rm := r.newRemover(tid)
	defer rm.close()
	// Its rests measure this batch's work only. A big session takes a
	// while to detach and notify: at each pause the remover makes sure
	// that it does not keep an unmounted mount's connection alive.
	p := pacer{rest: r.stop, atPause: rm.letGoIfUnmounted}
	for _, e := range batch {
		select {
		case <-r.stop:
			return false
		default:
		}
		r.tellKernel(e, rm, &p)
	}
	return true
}

// tellKernel takes the session's entries out of go-fuse's tree and tells
// the kernel that they and the session are gone, innermost first: the
// kernel deletes a directory's entry only once none is cached inside, and
// a watcher of a directory sees IN_DELETE_SELF only if its entry is
// deleted.
func (r *reaper) tellKernel(e endedSession, rm *remover, p *pacer) {
	removed := detachEntries(e.dir, p)
	// detachEntries lists a directory before anything inside it.
	for i := len(removed) - 1; i >= 0; i-- {
		re := removed[i]
		re.parent.NotifyDelete(re.name, re.child)
		p.step()
	}
	if e.root == nil {
		return
	}
	err := rm.remove(e)
	switch {
	case err == nil:
	case nameTaken(e):
		// The kernel's entry of the name is the new session's: the
		// notification would find it not ours, but would drop it, and
		// detach whatever is mounted on it, first.
		r.log.Debug("session end not told: a new session has the name", "session", e.name, "why", err)
	default:
		r.log.Debug("session end told by notification", "session", e.name, "why", err)
		e.root.NotifyDelete(e.name, e.dir)
	}
	p.step()
}

// nameTaken says whether a live session has e's name now.
func nameTaken(e endedSession) bool {
	root, ok := e.root.Operations().(*rootDir)
	return !ok || root.child(e.name) != nil
}

// pacer makes a long run of work outside requests give way to them. The
// daemon often runs Go code on one CPU (GOMAXPROCS=1 while one process
// calls it), and there a goroutine that neither blocks nor yields keeps
// every request waiting until the scheduler preempts it: ten thousand
// sessions ending at once kept a request waiting while 200 to 800 of them
// ended (TestSessionMassExpiryGivesWay), and stat and readdir up to 180 ms
// (BenchmarkSessionMassExpiry). It yields after every paceEvery steps, and
// if rest is set also pauses as long as those steps took, until rest closes.
// atPause, if set, is called at each pause.
type pacer struct {
	rest    <-chan struct{}
	atPause func()
	steps   int
	since   time.Time // when the current run of steps began
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
	if p.atPause != nil {
		p.atPause()
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
