package main

import (
	"context"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/spoolfs/spoolfs/spill"
)

// trimMemory gives freed file data back to the kernel. The Go runtime
// returns freed heap slowly when it is far below its memory limit, so after
// a 1 GiB file was deleted the daemon kept a 1.1 GiB RSS; spoolfs's RSS
// must track what it holds, not what it once held. Once a second it looks
// at the RAM held (see trimmer for when it acts) and, when it is time,
// collects and returns the memory (debug.FreeOSMemory, after one more
// collection for the pools).
//
// At each look it also sets the Go memory limit (memoryLimit) from the RAM
// budget and the inodes held now: both change on a live mount ('spoolfs
// set', remount; every create), and a limit below what the daemon
// legitimately holds makes the collector run without end.
func trimMemory(ctx context.Context, pool *spill.Pool, inodes func() int64) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	t := newTrimmer(pool.Stats().RAMBytes)
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		debug.SetMemoryLimit(memoryLimit(pool.RAMBudget(), inodes()))
		if t.observe(pool.Stats().RAMBytes) {
			// Freed pages sit in sync.Pools, which a collection only
			// moves to their victim caches: the second one empties them.
			runtime.GC()
			debug.FreeOSMemory()
		}
	}
}

// memoryLimit is the Go memory limit for a daemon with this RAM budget
// that holds this many inodes: the budget, what the daemon needs whatever
// it holds (request buffers, the runtime), and what each inode costs in
// the daemon's heap wherever its bytes are (its node in go-fuse's tree and
// ours, attributes, the spill layer's record: about 1.7 KiB measured with
// a million spilled 4 KiB files).
func memoryLimit(ramBudget, inodes int64) int64 {
	return ramBudget + memoryOverhead + inodes*inodeOverhead
}

const (
	// memoryOverhead is what the daemon may use beyond the RAM budget and
	// its inodes: FUSE request buffers, the Go runtime.
	memoryOverhead = 32 << 20
	// inodeOverhead is what one inode costs the daemon's heap, rounded up.
	inodeOverhead = 2 << 10
)

const (
	// trimDrop: a fall in the RAM held this large since the last trim
	// returns the memory at once, even while the fall goes on.
	trimDrop = 32 << 20
	// trimSettle: once the RAM held has stopped falling, a fall this
	// large since the last trim is returned too. Without it, a trim in
	// the middle of a large deletion left up to trimDrop freed and kept
	// for good (TestCLIMemoryTracksRAM saw 49 MiB where 18 were due).
	trimSettle = 4 << 20
)

// trimmer decides, from the RAM held at each look, when to return freed
// memory: a collection costs a full GC, so not on every small change.
type trimmer struct {
	peak int64 // the most held since the last trim
	last int64 // held at the previous look
}

func newTrimmer(held int64) *trimmer { return &trimmer{peak: held, last: held} }

// observe takes the RAM held now and reports whether to trim.
func (t *trimmer) observe(held int64) bool {
	freed := t.peak - held
	trim := freed > trimDrop || (held == t.last && freed > trimSettle)
	if trim {
		t.peak = held
	}
	t.peak = max(t.peak, held)
	t.last = held
	return trim
}
