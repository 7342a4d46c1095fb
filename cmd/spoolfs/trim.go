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
func trimMemory(ctx context.Context, pool *spill.Pool) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	t := newTrimmer(pool.Stats().RAMBytes)
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if t.observe(pool.Stats().RAMBytes) {
			// Freed pages sit in sync.Pools, which a collection only
			// moves to their victim caches: the second one empties them.
			runtime.GC()
			debug.FreeOSMemory()
		}
	}
}

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
