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
// must track what it holds, not what it once held. Once a second, if the
// RAM held has dropped by more than a threshold since the last look, it
// collects and returns the memory (debug.FreeOSMemory, after one more
// collection for the pools).
func trimMemory(ctx context.Context, pool *spill.Pool) {
	const drop = 32 << 20
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	peak := pool.Stats().RAMBytes
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		held := pool.Stats().RAMBytes
		if peak-held > drop {
			// Freed pages sit in sync.Pools, which a collection only
			// moves to their victim caches: the second one empties them.
			runtime.GC()
			debug.FreeOSMemory()
			peak = held
		}
		peak = max(peak, held)
	}
}
