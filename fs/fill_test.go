//go:build linux

package fs

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/spoolfs/spoolfs/fs/fusetest"
)

// dropCache asks the kernel to drop its cached pages of f, as fio does
// before every job.
func dropFileCache(t *testing.T, f *os.File) {
	t.Helper()
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		t.Fatal(err)
	}
}

// openRandom opens p read-only as a random reader (fio does the same), so
// that readahead does not widen its reads past what starts a fill.
func openRandom(t *testing.T, p string) *os.File {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_RANDOM); err != nil {
		f.Close()
		t.Fatal(err)
	}
	return f
}

// waitNoWriters waits for the kernel's RELEASE of every writable handle of
// n: it comes after close(2) has returned, and until it does the file
// counts as open for writing, which no fill may overlap.
func waitNoWriters(t *testing.T, n *fileNode) {
	t.Helper()
	fusetest.WaitFor(t, 10*time.Second, "the writable handles' release", func() bool { return fillOf(n).writers == 0 })
}

func fillOf(n *fileNode) fillState {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.fillState
}

func pattern(seed byte, size int) []byte {
	p := make([]byte, size)
	for i := range p {
		p[i] = seed + byte(i/4096) + byte(i%251)
	}
	return p
}

// writeDirect writes data to p through a write-only open, which leaves
// nothing in the page cache.
func writeDirect(t *testing.T, p string, data []byte) {
	t.Helper()
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestFillAfterMiss: a small read that the kernel's cache cannot serve
// makes the filler store the whole file there, so that the reads after it
// need no round trip; in both tiers.
func TestFillAfterMiss(t *testing.T) {
	for _, spilled := range []bool{false, true} {
		t.Run(fmt.Sprintf("spilled=%v", spilled), func(t *testing.T) {
			const size = 8 << 20
			// Reads of a spilled file come to the daemon only without
			// passthrough (passthrough.go).
			m := mountSessions(t, sessOpts{cache: 64 << 20, spillAll: spilled, noPassthrough: true})
			p := filepath.Join(m.dir, "f")
			data := pattern(1, size)
			writeDirect(t, p, data)
			n := m.f.root.GetChild("f").Operations().(*fileNode)
			waitNoWriters(t, n)
			f := openRandom(t, p)
			defer f.Close()
			if got := cachedPagesIn(t, f, 0, size); got != 0 {
				t.Fatalf("%d pages cached after a write-only write, want none", got)
			}
			buf := make([]byte, 4096)
			if _, err := f.ReadAt(buf, 3<<20+4096); err != nil {
				t.Fatal(err)
			}
			fusetest.WaitFor(t, 20*time.Second, "the filler to store the file", func() bool {
				st := fillOf(n)
				return !st.queued && st.stored == size
			})
			if got := cachedPagesIn(t, f, 0, size); got != size/4096 {
				t.Errorf("%d pages cached after the fill, want all %d", got, size/4096)
			}
			// What the kernel now serves from its cache is the file.
			got := make([]byte, size)
			if _, err := f.ReadAt(got, 0); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Fatal("the filled cache differs from the file")
			}
			if st := fillOf(n); st.stored != size {
				t.Errorf("the filler stored %d bytes, want %d once", st.stored, size)
			}
		})
	}
}

// TestNoFillWhileWritable: while a file has a writable handle, a miss
// stores nothing; after the last writable handle is closed, a miss does.
func TestNoFillWhileWritable(t *testing.T) {
	const size = 2 << 20
	m := mountSessions(t, sessOpts{cache: 64 << 20})
	p := filepath.Join(m.dir, "f")
	writeDirect(t, p, pattern(2, size))
	n := m.f.root.GetChild("f").Operations().(*fileNode)
	waitNoWriters(t, n)

	w, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	r := openRandom(t, p)
	defer r.Close()
	buf := make([]byte, 4096)
	for i := range 4 {
		dropFileCache(t, r)
		if _, err := r.ReadAt(buf, int64(i)*8192); err != nil {
			t.Fatal(err)
		}
		// missed() decides in the READ handler, before the read returns.
		if st := fillOf(n); st.queued || st.stored != 0 {
			t.Fatalf("with a writable handle open, a miss queued a fill (%+v)", st)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	fusetest.WaitFor(t, 10*time.Second, "the writable handle's release", func() bool { return fillOf(n).writers == 0 })
	dropFileCache(t, r)
	if _, err := r.ReadAt(buf, 0); err != nil {
		t.Fatal(err)
	}
	fusetest.WaitFor(t, 20*time.Second, "a fill once the writer is gone", func() bool {
		st := fillOf(n)
		return !st.queued && st.stored == size
	})
}

// TestFillCoherent: a change to the file while a fill has read a piece and
// not yet stored it (a writer that opens the file, writes all of it anew
// and closes; or a truncate by path) must wait for the store, or the
// kernel's cache would keep the bytes from before the change. The filler
// is held at that moment until the change is done or 100 ms have passed:
// with the fill lock the change cannot be done, without it the stale store
// happens every round. The cache is then read as it is, without dropping it.
func TestFillCoherent(t *testing.T) {
	const size = 1 << 20
	m := mountSessions(t, sessOpts{cache: 64 << 20})
	m.f.filler.pause = 0 // every round's miss may fill
	p := filepath.Join(m.dir, "f")
	writeDirect(t, p, pattern(0, size))
	n := m.f.root.GetChild("f").Operations().(*fileNode)
	waitNoWriters(t, n)
	r := openRandom(t, p)
	defer r.Close()

	// The round's change goes to the filler's hook through changes, and
	// closes the round's changed channel once done.
	changes := make(chan func(), 1)
	m.f.filler.beforeStore = func() {
		var run func()
		select {
		case run = <-changes:
		default:
			return
		}
		done := make(chan struct{})
		go func() { run(); close(done) }()
		select {
		case <-done:
		case <-time.After(100 * time.Millisecond):
		}
	}
	for round := range 12 {
		before := pattern(byte(round), size)
		after := pattern(byte(round+100), size)
		truncate := round%3 == 2
		want := after
		if truncate {
			want = before[:size/3]
		}
		changed := make(chan struct{})
		changes <- func() {
			defer close(changed)
			if truncate {
				if err := os.Truncate(p, size/3); err != nil {
					t.Error(err)
				}
				return
			}
			w, err := os.OpenFile(p, os.O_RDWR, 0)
			if err != nil {
				t.Error(err)
				return
			}
			if _, err := w.WriteAt(after, 0); err != nil {
				t.Error(err)
			}
			if err := w.Close(); err != nil {
				t.Error(err)
			}
		}
		dropFileCache(t, r)
		buf := make([]byte, 4096)
		if _, err := r.ReadAt(buf, int64(round%8)*4096); err != nil { // the miss
			t.Fatal(err)
		}
		select {
		case <-changed:
		case <-time.After(20 * time.Second):
			t.Fatalf("round %d: the miss started no fill", round)
		}
		fusetest.WaitFor(t, 20*time.Second, "the fill to end", func() bool { return !fillOf(n).queued })
		got := make([]byte, size)
		k, err := r.ReadAt(got, 0)
		if k != len(want) {
			t.Fatalf("round %d: read %d bytes (%v), want %d", round, k, err, len(want))
		}
		if i := firstDiff(got[:k], want); i >= 0 {
			t.Fatalf("round %d (truncate %v): the kernel's cache differs from the file from byte %d", round, truncate, i)
		}
		writeDirect(t, p, pattern(byte(round+1), size)) // the next round's "before"
		waitNoWriters(t, n)
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}

// missOnce mounts spoolfs with the filler's window set to window, writes
// a file of size bytes (to disk if spilled), reads 4 KiB of it at at as a
// random reader, and waits for the filler to be done with it.
func missOnce(t *testing.T, spilled bool, window, size, at int64) (*fileNode, *os.File) {
	t.Helper()
	m := mountSessions(t, sessOpts{spillAll: spilled, noPassthrough: true})
	m.f.filler.window = window
	p := filepath.Join(m.dir, "f")
	writeDirect(t, p, pattern(3, int(size)))
	n := m.f.root.GetChild("f").Operations().(*fileNode)
	waitNoWriters(t, n)
	f := openRandom(t, p)
	t.Cleanup(func() { f.Close() })
	if _, err := f.ReadAt(make([]byte, 4096), at); err != nil {
		t.Fatal(err)
	}
	fusetest.WaitFor(t, 20*time.Second, "the filler to be done with the file", func() bool {
		st := fillOf(n)
		return !st.queued && !st.endedAt.IsZero()
	})
	return n, f
}

// TestFillWindow: one miss stores at most the filler's window, from the
// piece of the miss on, and wraps to the start of the file.
func TestFillWindow(t *testing.T) {
	n, f := missOnce(t, false, 3<<20, 8<<20, 6<<20+8192) // in the 7th MiB
	if st := fillOf(n); st.stored != 3<<20 {
		t.Errorf("one miss stored %d bytes, want the window, %d", st.stored, 3<<20)
	}
	// MiBs 6 and 7, then 0: the window wrapped.
	for _, mib := range []int64{6, 7, 0} {
		if got := cachedPagesIn(t, f, mib<<20, 1<<20); got != 256 {
			t.Errorf("MiB %d of the file: %d pages cached, want 256", mib, got)
		}
	}
	if got := cachedPagesIn(t, f, 3<<20, 1<<20); got > 1 {
		t.Errorf("MiB 3 of the file, outside the window: %d pages cached", got)
	}
}

// cachedPagesIn is how many pages of [off, off+n) of f the kernel's page
// cache holds (cachestat(2): no mapping, so no request to the daemon
// serving it).
func cachedPagesIn(t *testing.T, f *os.File, off, n int64) uint64 {
	t.Helper()
	var st unix.Cachestat_t
	if err := unix.Cachestat(uint(f.Fd()), &unix.CachestatRange{Off: uint64(off), Len: uint64(n)}, &st, 0); err != nil {
		t.Fatalf("cachestat: %v", err)
	}
	return st.Cache
}

// TestNoFillOfLargeSpilledFile: a spilled file larger than the window is
// left to the kernel's readahead: a window of it could be a window of disk
// reads for one small read.
func TestNoFillOfLargeSpilledFile(t *testing.T) {
	n, _ := missOnce(t, true, 3<<20, 8<<20, 1<<20)
	if st := fillOf(n); st.stored != 0 {
		t.Errorf("the filler stored %d bytes of a spilled file larger than its window", st.stored)
	}
}

// TestNoFillOfWholeRead: a read that brought the whole file leaves nothing
// for the filler to do (small files read whole, as cat reads them).
func TestNoFillOfWholeRead(t *testing.T) {
	m := mountSessions(t, sessOpts{})
	p := filepath.Join(m.dir, "f")
	writeDirect(t, p, pattern(5, 16<<10))
	n := m.f.root.GetChild("f").Operations().(*fileNode)
	waitNoWriters(t, n)
	f := openRandom(t, p)
	defer f.Close()
	if _, err := f.ReadAt(make([]byte, 16<<10), 0); err != nil {
		t.Fatal(err)
	}
	if st := fillOf(n); st.queued || st.stored != 0 {
		t.Errorf("a read of the whole file queued a fill (%+v)", st)
	}
	// The same file read a page at a time does miss.
	dropFileCache(t, f)
	if _, err := f.ReadAt(make([]byte, 4096), 8192); err != nil {
		t.Fatal(err)
	}
	fusetest.WaitFor(t, 20*time.Second, "a fill after a partial read", func() bool {
		st := fillOf(n)
		return !st.queued && st.stored == 16<<10
	})
}
