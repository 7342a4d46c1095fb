package fs

import (
	"container/list"
	"sync"
)

// cacheKeeper bounds the page cache the kernel keeps for RAM-tier files
// that nobody has open. Their bytes already live in spoolfs's RAM pages;
// the kernel's copy makes re-reads as fast as tmpfs, but left alone it
// would keep a second copy of every RAM-tier byte for as long as memory
// allows. So closed RAM-tier files keep their kernel cache only while the
// total stays under a budget; past it, the least recently closed lose it.
// Open files always keep theirs. Spilled files are not bounded here: their
// copies are page cache (the spill file's, and the FUSE file's unless they
// are read through passthrough), which the kernel reclaims on its own;
// but a closed spilled file that passthrough can serve loses the FUSE
// file's copy at once (dropSpilledCache).
type cacheKeeper struct {
	budget int64
	drops  chan *fileNode // served by one goroutine: notifications never run in a request

	mu sync.Mutex
	// Guarded by mu, with fileNode.cacheElem and fileNode.cachedBytes:
	lru     list.List // *fileNode, most recently closed at the front
	bytes   int64
	stopped bool
}

func newCacheKeeper(budget int64) *cacheKeeper {
	k := &cacheKeeper{budget: budget, drops: make(chan *fileNode, 1024)}
	go k.dropLoop()
	return k
}

// closed records that n's last handle went away with size bytes cached at
// most, and drops the cache of the files that no longer fit. A file larger
// than the whole budget loses its own cache and nobody else's.
func (k *cacheKeeper) closed(n *fileNode, size int64) {
	var evict []*fileNode
	k.mu.Lock()
	k.removeLocked(n)
	if size > k.budget {
		evict = append(evict, n)
	} else {
		n.cachedBytes = size
		n.cacheElem = k.lru.PushFront(n)
		k.bytes += size
	}
	for k.bytes > k.budget && k.lru.Len() > 0 {
		victim := k.lru.Back().Value.(*fileNode)
		k.removeLocked(victim)
		evict = append(evict, victim)
	}
	if k.stopped {
		evict = nil
	}
	for _, v := range evict {
		k.drops <- v // under mu, so that close cannot race the send
	}
	k.mu.Unlock()
}

// drop asks the kernel to drop n's cached pages now, whatever the budget:
// n is closed and its bytes are cached elsewhere (dropSpilledCache).
func (k *cacheKeeper) drop(n *fileNode) {
	k.mu.Lock()
	k.removeLocked(n)
	if !k.stopped {
		k.drops <- n // under mu, so that close cannot race the send
	}
	k.mu.Unlock()
}

// opened or freed: n's cache is no longer ours to bound.
func (k *cacheKeeper) forget(n *fileNode) {
	k.mu.Lock()
	k.removeLocked(n)
	k.mu.Unlock()
}

func (k *cacheKeeper) removeLocked(n *fileNode) {
	if n.cacheElem != nil {
		k.lru.Remove(n.cacheElem)
		n.cacheElem = nil
		k.bytes -= n.cachedBytes
		n.cachedBytes = 0
	}
}

// dropLoop asks the kernel to drop cached pages, outside any request.
func (k *cacheKeeper) dropLoop() {
	for n := range k.drops {
		n.NotifyContent(0, 0) // a file not open anywhere: nothing dirty to lose
	}
}

func (k *cacheKeeper) close() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.stopped {
		k.stopped = true
		close(k.drops)
	}
}
