package fs

import (
	"errors"
	"io"
	"sync"
	"time"

	"github.com/spoolfs/spoolfs/fs/sysmem"
)

// cacheFiller answers a read that missed the kernel's page cache by storing
// the file's bytes there (FUSE_NOTIFY_STORE), so that the reads after it
// are served by the kernel, as tmpfs serves every read, instead of costing
// a round trip each. Without it, a file the kernel holds no copy of (one
// written through a write-only open, or whose cache was dropped, as fio
// does before every job with posix_fadvise(DONTNEED)) was read at one round
// trip per 4 KiB random read: 0.03x of tmpfs.
//
// Storing into the cache must never put stale bytes there, so a file is
// filled only while nobody can change it: while it has no writable handle.
// Each piece is read and stored under the file's fill lock, which anything
// that could change the bytes without a writable handle's help also takes:
// opening a writable handle, a truncate by path, and the last close (so
// that no piece lands after the cacheKeeper has dropped a closed file's
// cache). A write, a truncate, a fallocate or a store through a shared
// mapping all need a writable handle, and dirty pages of a shared mapping
// are written back at close.
//
// One goroutine fills, one file at a time, a piece at a time, so that a
// writer never waits for more than one piece, and at most window bytes per
// miss. It fills only while the machine has memory to spare (MemAvailable
// above twice what it would store), so that it cannot fight the kernel's
// reclaim for the same pages; and a file is filled again only pause after
// its last fill ended, so that misses cannot keep it busy with one file.
type cacheFiller struct {
	window       int64
	pause        time.Duration
	memAvailable func() (int64, bool)
	obs          Observer
	queue        chan *fileNode
	done         chan struct{}
	// beforeStore, if set (by tests), is called with a piece read and not
	// yet stored: the moment no change may slip into.
	beforeStore func()

	mu      sync.Mutex
	stopped bool
}

// fillTriggerMax is the largest read that starts a fill: readahead makes
// the reads of a sequential reader larger, and those need no help.
const fillTriggerMax = 32 << 10

// fillPiece is the most the filler reads and stores under one hold of a
// file's fill lock: what a writer opening the file may have to wait for.
const fillPiece = 1 << 20

// fillWindow is the most one miss may have stored: like readahead, a
// guess at what the reader will want, and bounded like it, if far more
// generously (the kernel's readahead stops at 1 MiB here). A RAM-tier file
// larger than this is filled around the misses, a window at a time; a
// spilled one is not filled at all.
const fillWindow = 256 << 20

// fillPause is how long after a fill of a file ends a miss may start
// another. Short: fio, before each pass over a file, drops its cache with
// posix_fadvise(DONTNEED), and a pass at cache speed lasts a fraction of a
// second.
const fillPause = 50 * time.Millisecond

func newCacheFiller(obs Observer) *cacheFiller {
	c := &cacheFiller{window: fillWindow, pause: fillPause, obs: obs, memAvailable: sysmem.Available,
		queue: make(chan *fileNode, 64), done: make(chan struct{})}
	go c.loop()
	return c
}

// fillState is a file's part of the filler's bookkeeping, guarded by the
// file's attrs.mu.
type fillState struct {
	queued  bool      // waiting for, or being served by, the filler
	from    int64     // where the miss that queued it was
	endedAt time.Time // when its last fill ended
	writers int       // handles that may change the bytes
	stored  int64     // bytes stored by fills so far
}

// missed is told of a read of n at off that the kernel's cache could not
// serve. It queues n for filling if nothing stands in the way, and never
// blocks: a request handler calls it.
func (c *cacheFiller) missed(n *fileNode, off int64) {
	if c == nil || c.window <= 0 {
		return
	}
	// The real clock, not the mount's (which tests move by hand): the
	// pause is a rate, not a timestamp anyone sees.
	now := time.Now()
	n.mu.Lock()
	ok := !n.fillState.queued && n.fillState.writers == 0 && !n.freed && n.pt == nil &&
		(n.fillState.endedAt.IsZero() || now.Sub(n.fillState.endedAt) >= c.pause)
	if ok {
		n.fillState.queued, n.fillState.from = true, off
	}
	n.mu.Unlock()
	if !ok {
		return
	}
	c.mu.Lock()
	sent := false
	if !c.stopped {
		select {
		case c.queue <- n:
			sent = true
		default: // busy with others: the next miss will ask again
		}
	}
	c.mu.Unlock()
	if !sent {
		n.mu.Lock()
		n.fillState.queued = false
		n.mu.Unlock()
	}
}

func (c *cacheFiller) loop() {
	defer close(c.done)
	buf := make([]byte, fillPiece)
	for n := range c.queue {
		if c.isStopped() { // unmounting: nothing left to serve
			continue
		}
		c.fill(n, buf)
	}
}

func (c *cacheFiller) isStopped() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stopped
}

// fill stores up to window bytes of n, starting at the piece of the miss
// and wrapping around to the start of the file.
func (c *cacheFiller) fill(n *fileNode, buf []byte) {
	n.mu.Lock()
	from := n.fillState.from
	n.mu.Unlock()
	size := n.data.Size()
	if size > c.window && n.data.OnDisk() {
		// Filling a window of a larger spilled file could read a
		// window from the disk for one random 4 KiB read; its reader
		// gets the kernel's readahead instead.
		c.fillEnded(n)
		return
	}
	budget := min(size, c.window)
	if avail, ok := c.memAvailable(); ok {
		budget = min(budget, avail/2)
	}
	pos := from - from%fillPiece
	if pos >= size {
		pos = 0
	}
	for budget > 0 && !c.isStopped() {
		end := min(pos+fillPiece, size)
		stored, ok := c.storePiece(n, buf[:end-pos], pos)
		if !ok {
			break
		}
		budget -= stored
		if pos = end; pos >= size {
			pos = 0
		}
	}
	c.fillEnded(n)
}

// fillEnded ends a fill of n: the next miss may start another after the pause.
func (c *cacheFiller) fillEnded(n *fileNode) {
	n.mu.Lock()
	n.fillState.queued = false
	n.fillState.endedAt = time.Now()
	n.mu.Unlock()
}

// storePiece reads [off, off+len(buf)) of n and stores it in the kernel's
// cache, if n has an open handle and no writable one; under n.fill, so that
// no writable handle can appear, and no truncate or last close happen, in
// between.
func (c *cacheFiller) storePiece(n *fileNode, buf []byte, off int64) (int64, bool) {
	n.fill.Lock()
	defer n.fill.Unlock()
	n.mu.Lock()
	// A passthrough reader reads the backing file's pages: a store
	// would only be a second copy nobody reads.
	ok := n.fillState.writers == 0 && n.opens > 0 && !n.freed && n.pt == nil
	n.mu.Unlock()
	if !ok {
		return 0, false
	}
	got, err := n.data.ReadAt(buf, off)
	if err != nil && !errors.Is(err, io.EOF) || got == 0 {
		return 0, false
	}
	if c.beforeStore != nil {
		c.beforeStore()
	}
	if errno := n.WriteCache(off, buf[:got]); errno != 0 {
		return 0, false // the kernel forgot the inode, or is unmounting
	}
	n.mu.Lock()
	n.fillState.stored += int64(got)
	n.mu.Unlock()
	c.obs.CacheFilled(int64(got))
	return int64(got), true
}

// close stops the filler once its current piece is stored.
func (c *cacheFiller) close() {
	if c == nil {
		return
	}
	c.mu.Lock()
	if !c.stopped {
		c.stopped = true
		close(c.queue)
	}
	c.mu.Unlock()
	<-c.done
}
