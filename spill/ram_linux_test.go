package spill

import (
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// A RAM file's new page must be touched first by a write. Read first (as
// Go's nil check of a page pointer does), fresh memory maps the shared
// zero page and the write that follows faults again to replace it, with a
// TLB flush on every CPU running one of the daemon's threads: two faults
// and an IPI per 4 KiB, the largest cost of a 1 MiB write to the RAM tier.
func TestRAMWriteFaultsEachNewPageOnce(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's shadow memory faults too; make unit runs this without -race")
	}
	p := newTestPool(t, 1<<30, 1<<30)
	f := p.NewFile(nopAcct{})
	defer f.Close()
	const size, chunk = 32 << 20, 1 << 20
	buf := make([]byte, chunk)
	for i := range buf {
		buf[i] = byte(i)
	}

	// Page faults are counted per thread: the garbage collector's and
	// other goroutines' are not this thread's.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var before, after unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_THREAD, &before); err != nil {
		t.Fatal(err)
	}
	for off := int64(0); off < size; off += chunk {
		if _, err := f.WriteAt(buf, off); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Getrusage(unix.RUSAGE_THREAD, &after); err != nil {
		t.Fatal(err)
	}
	faults := after.Minflt - before.Minflt
	pages := int64(size / PageSize)
	t.Logf("%d minor faults writing %d new pages", faults, pages)
	// Once per page, plus some for the heap's own structures; twice per
	// page is the zero-page refault.
	if faults > pages*5/4 {
		t.Errorf("%d minor faults writing %d new pages: more than one per page", faults, pages)
	}
}
