package fs

import (
	"context"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/spoolfs/spoolfs/fs/control"
	"github.com/spoolfs/spoolfs/fs/expiry"
	"github.com/spoolfs/spoolfs/quota"
)

// session is a top-level directory of the mount with its own account and
// lifetime. Lock order: gate, then mu; the expiry table's mu is never held
// while either is taken.
type session struct {
	fsys    *FS
	dir     *sessionDir
	acct    *quota.Account
	created time.Time

	lastActive atomic.Int64 // unix nanoseconds of the last operation inside
	opens      atomic.Int64 // open files inside: a session in use is not idle

	// gate is held shared by every operation that changes the session's
	// tree, and exclusively by end, so that no entry is added to a session
	// being torn down.
	gate  sync.RWMutex
	ended atomic.Bool // set under gate held exclusively; read anywhere

	mu sync.Mutex
	// Guarded by mu:
	nodes      map[uint64]node // every live node inside, by inode number
	policy     control.SessionPolicy
	pid        int    // owning process, in the daemon's PID namespace; 0: none
	endRequest string // set when the session must end at once (rm, owner exited)
	stopWatch  func() // stops watching pid
}

func (s *session) touch() { s.lastActive.Store(s.fsys.now().UnixNano()) }

// deadlineLocked is when the session ends if nothing else happens, and why.
// A zero time with a reason means now.
func (s *session) deadlineLocked() (time.Time, string) {
	if s.endRequest != "" {
		return time.Time{}, s.endRequest
	}
	var at time.Time
	var why string
	if s.policy.TTL > 0 {
		at, why = s.created.Add(s.policy.TTL), control.ReasonTTL
	}
	if s.policy.Idle > 0 {
		idleAt := time.Unix(0, s.lastActive.Load()).Add(s.policy.Idle)
		if at.IsZero() || idleAt.Before(at) {
			at, why = idleAt, control.ReasonIdle
		}
	}
	return at, why
}

// sessionTable tracks the live sessions and their deadlines.
type sessionTable struct {
	fsys   *FS
	kick   chan struct{} // wakes the expiry loop after a deadline moved
	reaper *reaper

	mu sync.Mutex
	// Guarded by mu:
	defaults control.SessionPolicy // of new sessions, and their owners' ceiling
	queue    *expiry.Queue[*session]
	live     map[*session]struct{}
}

// policy is the default and ceiling of sessions, as last set.
func (t *sessionTable) policy() control.SessionPolicy {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.defaults
}

// setPolicy changes the default and ceiling of sessions made from now on,
// and of the changes their owners make from now on.
func (t *sessionTable) setPolicy(p control.SessionPolicy) {
	t.mu.Lock()
	t.defaults = p
	t.mu.Unlock()
}

func newSessionTable(f *FS, defaults control.SessionPolicy) *sessionTable {
	return &sessionTable{fsys: f, defaults: defaults, kick: make(chan struct{}, 1), reaper: newReaper(f.log),
		queue: expiry.New[*session](), live: make(map[*session]struct{})}
}

// schedule puts s's current deadline in the queue and wakes the loop.
func (t *sessionTable) schedule(s *session) {
	s.mu.Lock()
	at, why := s.deadlineLocked()
	s.mu.Unlock()
	t.mu.Lock()
	if why == "" {
		t.queue.Remove(s)
	} else {
		t.queue.Set(s, at)
	}
	t.mu.Unlock()
	select {
	case t.kick <- struct{}{}:
	default:
	}
}

func (t *sessionTable) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.live)
}

// Run ends sessions as their deadlines pass, until ctx is done. Each wake
// costs O(log n) per session due, never a scan.
func (t *sessionTable) Run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		t.mu.Lock()
		next, ok := t.queue.Next()
		t.mu.Unlock()
		wait := time.Hour
		if ok {
			wait = max(next.Sub(t.fsys.now()), 0)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-t.kick:
		}
		t.expireDue(t.fsys.now())
	}
}

// expireDue ends every session whose deadline has passed at now. A session
// that was active since its deadline was queued, or that has files open
// when it would end for idleness, is queued again instead.
//
// Thousands of sessions may be due at once (their owner exited, say). They
// leave the queue a batch at a time, so that t.mu is never held for long;
// each is ended at once, which hides it and frees its bytes, and the
// kernel is told afterwards by the reaper; a pacer lets requests in all
// along.
func (t *sessionTable) expireDue(now time.Time) {
	var p pacer
	for {
		t.mu.Lock()
		due := t.queue.PopDue(now, expireBatch)
		t.mu.Unlock()
		if len(due) == 0 {
			return
		}
		var ended []endedSession
		for _, s := range due {
			if e, ok := t.expire(s, now, &p); ok {
				ended = append(ended, e)
			}
			p.step()
		}
		t.reaper.add(ended)
	}
}

// expireBatch is how many sessions expireDue takes from the queue at once.
const expireBatch = 64

// expire ends s if it is due at now, or queues it again.
func (t *sessionTable) expire(s *session, now time.Time, p *pacer) (endedSession, bool) {
	s.mu.Lock()
	at, why := s.deadlineLocked()
	s.mu.Unlock()
	switch {
	case why == "":
		// the policy changed to "never"
	case why == control.ReasonIdle && s.opens.Load() > 0:
		s.touch()
		t.schedule(s)
	case at.After(now):
		t.schedule(s)
	default:
		return t.end(s, why, p)
	}
	return endedSession{}, false
}

// end removes the session from the root in one step and frees everything
// in it that is not open; the caller then has the reaper tell the kernel.
// Files still open keep working, charged to the session, until their last
// close.
//
// What is freed comes from the session's register of nodes, not from the
// tree: go-fuse adds a new entry to its tree only after our handler has
// returned, so an entry made just before the end may not be in the tree
// yet, but it is in the register. The gate is held only to mark the
// session ended and take the register: no operation that could add to it
// gets past the gate afterwards.
func (t *sessionTable) end(s *session, why string, p *pacer) (endedSession, bool) {
	s.gate.Lock()
	if s.ended.Load() {
		s.gate.Unlock()
		return endedSession{}, false
	}
	// The name first: once ended is set, a lookup racing us may take the
	// entry out of the root itself (see child), and then the kernel would
	// never hear that the name is gone.
	name, root := s.dir.Parent()
	s.ended.Store(true)
	before := s.acct.Usage()
	if root != nil {
		root.RmChild(name)
	}
	nodes := s.takeNodes()
	s.gate.Unlock()
	if root != nil { // as rmdir of it would
		t.fsys.root.adjustNlink(-1)
		t.fsys.root.touchTimes()
	}

	for _, nd := range nodes {
		nd.endOfSession()
		p.step()
	}
	s.dir.dropLinkQuiet()
	t.forget(s)
	after := s.acct.Usage()
	s.maybeClose()
	t.fsys.log.Info("session ended", "session", name, "reason", why,
		"bytes_freed", max(before.Bytes-after.Bytes, 0), "inodes_freed", max(before.Inodes-after.Inodes, 0),
		"bytes_still_open", after.Bytes)
	t.fsys.obs.SessionEnded(why)
	return endedSession{root: root, name: name, dir: &s.dir.Inode}, true
}

// register records a new node inside the session.
func (s *session) register(nd node) {
	s.mu.Lock()
	if s.nodes == nil {
		s.nodes = make(map[uint64]node)
	}
	s.nodes[nd.meta().ino] = nd
	s.mu.Unlock()
}

// unregister forgets a node that has been freed.
func (s *session) unregister(ino uint64) {
	s.mu.Lock()
	delete(s.nodes, ino)
	s.mu.Unlock()
}

// liveNodes returns what the register holds now.
func (s *session) liveNodes() []node {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Collect(maps.Values(s.nodes))
}

// takeNodes empties the register and returns what it held.
func (s *session) takeNodes() map[uint64]node {
	s.mu.Lock()
	defer s.mu.Unlock()
	nodes := s.nodes
	s.nodes = nil
	return nodes
}

// forget drops s from the table and stops watching its owner.
func (t *sessionTable) forget(s *session) {
	t.mu.Lock()
	t.queue.Remove(s)
	delete(t.live, s)
	t.mu.Unlock()
	s.mu.Lock()
	stop := s.stopWatch
	s.stopWatch = nil
	s.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// maybeClose closes an ended session's account once nothing in it is left.
func (s *session) maybeClose() {
	if s.acct.Usage() == (quota.Usage{}) {
		s.acct.Close()
	}
}

type removedEntry struct {
	parent *gofs.Inode
	name   string
	child  *gofs.Inode
}

// detachEntries takes every entry below dir out of the tree, depth first
// without recursion, and returns them so that the kernel can be told once
// no lock is held.
func detachEntries(dir *gofs.Inode, p *pacer) []removedEntry {
	var removed []removedEntry
	stack := []*gofs.Inode{dir}
	for len(stack) > 0 {
		d := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for name, ch := range d.Children() {
			d.RmChild(name)
			removed = append(removed, removedEntry{d, name, ch})
			p.step()
			if ch.IsDir() {
				stack = append(stack, ch)
			}
		}
	}
	return removed
}

// sessionDir is a top-level directory: a dirNode with a session.
type sessionDir struct {
	dirNode
	s *session
}

// newSession makes the session for a top-level directory.
func (t *sessionTable) newSession(ctx context.Context, root *rootDir, mode uint32) (*sessionDir, syscall.Errno) {
	p := t.policy()
	acct := root.acct.NewChild(quota.Limits{Bytes: p.Bytes, Inodes: p.Inodes})
	charge := t.fsys.users.Charge(acct, callerUID(ctx))
	inh, mode, errno := root.inherit(charge, syscall.S_IFDIR|mode&07777)
	if errno != 0 {
		acct.Close()
		return nil, errno
	}
	if err := charge.ReserveInodes(1); err != nil {
		inh.release(t.fsys, charge)
		acct.Close()
		return nil, t.fsys.toErrno("mkdir", err)
	}
	s := &session{fsys: t.fsys, acct: acct, created: t.fsys.now(), policy: p}
	s.touch()
	dir := &sessionDir{s: s}
	s.dir = dir
	t.fsys.initAttrs(&dir.attrs, ctx, &root.dirNode, mode, charge)
	dir.adopt(inh)
	dir.nlink = 2
	dir.sess = s
	t.mu.Lock()
	t.live[s] = struct{}{}
	t.mu.Unlock()
	t.schedule(s)
	return dir, 0
}

// dropLink is rmdir of an empty session (or rename over it): it ends.
func (n *sessionDir) dropLink() {
	s := n.s
	name, _ := n.Parent() // before ended is set: see end
	s.gate.Lock()
	already := s.ended.Swap(true)
	s.gate.Unlock()
	if already {
		return
	}
	n.dropLinkQuiet()
	n.fsys.sessions.forget(s)
	s.maybeClose()
	// Only an empty session can be removed this way: nothing else to free.
	n.fsys.log.Info("session ended", "session", name, "reason", control.ReasonRemoved, "bytes_freed", 0)
	n.fsys.obs.SessionEnded(control.ReasonRemoved)
}

// dropLinkQuiet frees the directory's own inode.
func (n *sessionDir) dropLinkQuiet() { n.dirNode.dropLink() }

// rootDir is the mount's root: its subdirectories are sessions.
type rootDir struct {
	dirNode
}

var (
	_ gofs.NodeMkdirer  = (*rootDir)(nil)
	_ gofs.NodeLookuper = (*rootDir)(nil)
	_ gofs.NodeRmdirer  = (*rootDir)(nil)
)

// Lookup at the root finds the ended session that the reaper's own rmdir
// removes, if the kernel no longer had its entry; for everyone else, and
// once a new session has taken the name, the ended one stays gone.
func (n *rootDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if rm := n.fsys.sessions.reaper.request(ctx); rm != nil && rm.name == name && n.child(name) == nil {
		fillEntryOut(ctx, rm.dir.Operations(), out)
		return rm.dir, 0
	}
	return n.dirNode.Lookup(ctx, name, out)
}

// Rmdir at the root lets the reaper's rmdir of the session it removes
// succeed, and nothing else of the reaper's: not a session that has taken
// the name since. The kernel holds the root's lock from the lookup to the
// answer, so no session can take the name in between.
func (n *rootDir) Rmdir(ctx context.Context, name string) syscall.Errno {
	if rm := n.fsys.sessions.reaper.request(ctx); rm != nil {
		if hook := n.fsys.sessions.reaper.answeringRmdir; hook != nil {
			hook(name)
		}
		if rm.name == name && n.child(name) == nil {
			return 0
		}
		return syscall.EBUSY
	}
	return n.dirNode.Rmdir(ctx, name)
}

// Mkdir at the root makes a session with the mount's defaults.
func (n *rootDir) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if errno := checkName(name); errno != 0 {
		return nil, errno
	}
	if n.child(name) != nil {
		return nil, syscall.EEXIST
	}
	dir, errno := n.fsys.sessions.newSession(ctx, n, mode)
	if errno != 0 {
		return nil, errno
	}
	n.adjustNlink(+1)
	n.touchTimes()
	return n.addNode(ctx, dir, out), 0
}

// enter admits an operation that changes the tree of a's session (if any)
// and counts as activity; it fails with ENOENT once the session has ended.
// The caller must call leave when done.
func (a *attrs) enter() (leave func(), errno syscall.Errno) {
	s := a.sess
	if s == nil {
		return func() {}, 0
	}
	s.gate.RLock()
	if s.ended.Load() {
		s.gate.RUnlock()
		return nil, syscall.ENOENT
	}
	s.touch()
	return s.gate.RUnlock, 0
}

// active records an operation inside a's session, if any.
func (a *attrs) active() {
	if s := a.sess; s != nil {
		s.touch()
	}
}

func limitsOf(p control.SessionPolicy) quota.Limits {
	return quota.Limits{Bytes: p.Bytes, Inodes: p.Inodes}
}
