package spill

import (
	"bytes"
	"errors"
	"io"
	"math"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
)

// rawShared reads n bytes at off of the shared file that holds f's
// extents: its physical bytes, whoever they belong to.
func rawShared(t testing.TB, f *File, n int, off int64) []byte {
	t.Helper()
	f.mu.RLock()
	defer f.mu.RUnlock()
	b := make([]byte, n)
	got, err := diskOf(t, f).st.(*sharedSpace).sf.f.ReadAt(b, off)
	if err != nil && err != io.EOF {
		t.Fatal(err)
	}
	clear(b[got:]) // past the end: a hole
	return b
}

// checkSharedEmpty checks, once every file of p is closed and the
// reclaimer has caught up, that the shared files hold nothing: every unit
// is back in the allocator and reads as zeros, and a plain pool's shared
// files have no block left on disk.
func checkSharedEmpty(t testing.TB, p *Pool) {
	t.Helper()
	p.reclaim.drain()
	if n := p.Stats().Dedicated; n != 0 {
		t.Errorf("%d dedicated spill files still open with no file open", n)
	}
	p.sharedMu.Lock()
	defer p.sharedMu.Unlock()
	for i, sf := range p.shared {
		sf.mu.Lock()
		free, top := sf.alloc.freeUnits(), sf.alloc.top
		sf.mu.Unlock()
		if free != top {
			t.Errorf("shared file %d: %d of %d units free with no file open", i, free, top)
		}
		st, err := sf.f.Stat()
		if err != nil {
			t.Fatal(err)
		}
		raw := make([]byte, st.Size())
		if _, err := sf.f.ReadAt(raw, 0); err != nil && err != io.EOF {
			t.Fatal(err)
		}
		if !bytes.Equal(raw, make([]byte, len(raw))) {
			t.Errorf("shared file %d holds bytes with no file open", i)
		}
		if blocks := st.Sys().(*syscall.Stat_t).Blocks; p.seal == nil && blocks != 0 {
			t.Errorf("shared file %d holds %d blocks with no file open", i, blocks)
		}
	}
}

// dedicatedOf is f's dedicated spill file, or nil.
func dedicatedOf(f *File) *os.File {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if d, ok := f.tier.(*plainDisk); ok {
		return d.backingFile()
	}
	return nil
}

// TestSharedReuse: the space of closed files is used again by new ones,
// once punched, and a new owner reads zeros where the old one wrote.
func TestSharedReuse(t *testing.T) {
	const P = PageSize
	for _, encrypt := range []bool{false, true} {
		newPool := newTestPool
		if encrypt {
			newPool = newSealedPool
		}
		p := newPool(t, 0, 1<<20)
		top := func() int64 {
			var n int64
			for _, sf := range p.shared {
				sf.mu.Lock()
				n += sf.alloc.top
				sf.mu.Unlock()
			}
			return n
		}
		var first int64
		for round := range 50 {
			var files []*File
			for i := range 2 * sharedFiles {
				f := p.NewFile(newAcct())
				if _, err := f.WriteAt(pat(20*P, byte(round+i)), 0); err != nil {
					t.Fatal(err)
				}
				files = append(files, f)
			}
			for _, f := range files {
				f.Close()
			}
			p.reclaim.drain()
			if round == 0 {
				first = top()
			} else if got := top(); got != first {
				t.Fatalf("encrypt %v, round %d: shared files grew to %d units from %d: freed space not reused", encrypt, round, got, first)
			}
		}
		// New files over the old bytes: their holes read as zeros.
		for i := range 2 * sharedFiles {
			f := p.NewFile(newAcct())
			defer f.Close()
			if _, err := f.WriteAt([]byte("a"), 0); err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt([]byte("z"), 19*P); err != nil {
				t.Fatal(err)
			}
			checkContents(t, f, image(19*P+1, 0, []byte("a"), 19*P, []byte("z")))
			_ = i
		}
	}
}

// blockReclaimer stops p's reclaimer until the returned func is called:
// what is freed meanwhile waits in its queue.
func blockReclaimer(t *testing.T, p *Pool) (unblock func()) {
	t.Helper()
	release, started := make(chan struct{}), make(chan struct{})
	p.reclaim.submit(reclaimJob{then: func() { close(started); <-release }})
	<-started
	var once sync.Once
	unblock = func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock)
	return unblock
}

// TestFreeingDoesNotWait: closing a spilled file gives its bytes back to
// the accounts at once and leaves the disk's part to the reclaimer; the
// space is not placed again before it is punched.
func TestFreeingDoesNotWait(t *testing.T) {
	const P = PageSize
	p := newTestPool(t, 0, 1<<20)
	p.dedicatedMin = 4 * P
	small, large := p.NewFile(newAcct()), p.NewFile(newAcct())
	if _, err := small.WriteAt(pat(3*P, 1), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := large.WriteAt(pat(8*P, 2), 0); err != nil {
		t.Fatal(err)
	}
	if dedicatedOf(large) == nil {
		t.Fatal("the large file has no dedicated spill file")
	}
	small.mu.RLock()
	sf := small.tier.(*plainDisk).st.(*sharedSpace).sf
	small.mu.RUnlock()
	unblock := blockReclaimer(t, p)
	small.Close()
	large.Close()
	if st := p.Stats(); st.DiskBytes != 0 || st.DiskFiles != 0 {
		t.Fatalf("Stats after the closes = %+v: the bytes should have left at once", st)
	}
	if n := p.Stats().Dedicated; n != 1 {
		t.Errorf("%d dedicated files open while the reclaimer waits; want 1, closed later", n)
	}
	sf.mu.Lock()
	free, top := sf.alloc.freeUnits(), sf.alloc.top
	sf.mu.Unlock()
	if free != top-4 {
		t.Errorf("%d of %d units free before the punch; the closed file's 4 must wait for it", free, top)
	}
	// A new file in the same shared file takes other space, reading zeros.
	for i := 0; i < sharedFiles; i++ {
		f := p.NewFile(newAcct())
		defer f.Close()
		if _, err := f.WriteAt([]byte("x"), 2*P); err != nil {
			t.Fatal(err)
		}
		checkContents(t, f, image(2*P+1, 2*P, []byte("x")))
	}
	unblock()
	p.reclaim.drain()
	if n := p.Stats().Dedicated; n != 0 {
		t.Errorf("%d dedicated files open after the reclaimer ran", n)
	}
}

// TestReclaimQueueFull: with the reclaimer's queue full, a close does its
// own freeing rather than queue more.
func TestReclaimQueueFull(t *testing.T) {
	p := newTestPool(t, 0, 1<<20)
	unblock := blockReclaimer(t, p)
	files := onePageFiles(t, p, reclaimQueue+sharedFiles)
	for _, f := range files[:reclaimQueue] {
		f.Close()
	}
	if n := len(p.reclaim.jobs); n != reclaimQueue {
		t.Fatalf("%d frees queued, want %d", n, reclaimQueue)
	}
	before := func() (free int64) {
		for _, sf := range p.shared {
			sf.mu.Lock()
			free += sf.alloc.freeUnits()
			sf.mu.Unlock()
		}
		return free
	}
	was := before()
	for _, f := range files[reclaimQueue:] {
		f.Close()
	}
	if got := before(); got != was+sharedFiles {
		t.Errorf("free units %d -> %d with the queue full: the closes should have freed their own", was, got)
	}
	unblock()
}

// onePageFiles makes n files of p, each one byte long (a page on disk
// when p spills everything).
func onePageFiles(t *testing.T, p *Pool, n int) []*File {
	t.Helper()
	files := make([]*File, 0, n)
	for range n {
		f := p.NewFile(newAcct())
		if _, err := f.WriteAt([]byte("x"), 0); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	return files
}

// TestDescriptorsFlat: 60,000 spilled files, past any descriptor limit
// here, hold the shared spill files' descriptors and no more.
func TestDescriptorsFlat(t *testing.T) {
	const files = 60000
	p := newTestPool(t, 0, 1<<20)
	before := openFDs(t)
	var all []*File
	defer func() {
		for _, f := range all {
			f.Close()
		}
	}()
	data := pat(PageSize, 7)
	for i := range files {
		f := p.NewFile(nopAcct{})
		all = append(all, f)
		if _, err := f.WriteAt(data, 0); err != nil {
			t.Fatalf("file %d: %v", i, err)
		}
	}
	if got := openFDs(t) - before; got > sharedFiles {
		t.Errorf("%d spilled files hold %d more descriptors, want at most %d", files, got, sharedFiles)
	}
	if st := p.Stats(); st.DiskFiles != files || st.DiskBytes != files*PageSize {
		t.Errorf("Stats = %+v", st)
	}
	for _, i := range []int{0, files / 2, files - 1} {
		checkContents(t, all[i], data)
	}
}

func openFDs(t *testing.T) int {
	t.Helper()
	names, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("counting descriptors: %v", err)
	}
	return len(names)
}

// TestDedicated: a plain file that grows past dedicatedMin moves to a
// spill file of its own, in which offset X is offset X, within the
// budget; past the budget large files stay in the shared files; small and
// sealed files never get one.
func TestDedicated(t *testing.T) {
	const P = PageSize
	p, err := NewPool(Config{Dir: t.TempDir(), Threshold: 0, RAMBudget: 1 << 20, DedicatedFiles: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	grow := func(f *File, seed byte) []byte {
		t.Helper()
		// In small writes, with a hole, so that it crosses the line in
		// the shared files.
		want := image(dedicatedMinSize+3*P+5, 0, pat(P, seed), 2*P, pat(dedicatedMinSize+P+5, seed+1))
		for off := 2 * P; off < len(want); off += 64 << 10 {
			end := min(len(want), off+64<<10)
			if _, err := f.WriteAt(want[off:end], int64(off)); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := f.WriteAt(want[:P], 0); err != nil {
			t.Fatal(err)
		}
		return want
	}
	var files []*File
	for i := range 3 {
		f := p.NewFile(newAcct())
		files = append(files, f)
		want := grow(f, byte(i))
		checkContents(t, f, want)
		back := dedicatedOf(f)
		if (back != nil) != (i < 2) {
			t.Fatalf("file %d: dedicated %v, budget 2", i, back != nil)
		}
		if back == nil {
			continue
		}
		raw, err := os.ReadFile("/proc/self/fd/" + strconv.Itoa(int(back.Fd())))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(raw, want) {
			t.Errorf("file %d: its dedicated spill file is not the file, offset for offset (%d bytes, want %d)", i, len(raw), len(want))
		}
		if f.Allocated() != int64(len(want)+P-1)/P*P-P {
			t.Errorf("file %d: Allocated %d after the move", i, f.Allocated())
		}
	}
	if n := p.Stats().Dedicated; n != 2 {
		t.Errorf("Stats.Dedicated = %d, want 2", n)
	}
	files[0].Close()
	p.reclaim.drain()
	// Room again: the third file moves at its next write.
	if _, err := files[2].WriteAt([]byte("y"), 5); err != nil {
		t.Fatal(err)
	}
	if dedicatedOf(files[2]) == nil {
		t.Error("the third file did not move once a dedicated file was free")
	}
	small := p.NewFile(newAcct())
	if _, err := small.WriteAt(pat(10*P, 3), 0); err != nil {
		t.Fatal(err)
	}
	if dedicatedOf(small) != nil {
		t.Error("a small file has a dedicated spill file")
	}
	small.Close()

	sealed := newSealedPool(t, 0, 1<<20)
	f := sealed.NewFile(newAcct())
	defer f.Close()
	checkContents(t, f, grow(f, 9))
	if _, ok := f.tier.(*sealedDisk); !ok || sealed.Stats().Dedicated != 0 {
		t.Errorf("a sealed file moved: tier %T", f.tier)
	}

	if got, want := dedicatedBudget(0), min(softFileLimit(t)/4, 4096); got != want {
		t.Errorf("default dedicated budget %d, want %d", got, want)
	}
	if got := dedicatedBudget(-1); got != 0 {
		t.Errorf("dedicatedBudget(-1) = %d", got)
	}
}

func softFileLimit(t *testing.T) int64 {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	return int64(lim.Cur)
}

// TestExtentGeometry: every unit lies in exactly one extent, extents are
// aligned blocks of at most 256 units, and the walk over a range gives
// pieces that add up to it, up to the last slot of a sealed file, whose
// extent ends past math.MaxInt64.
func TestExtentGeometry(t *testing.T) {
	last := int64(MaxSize/PageSize) - 1
	units := []int64{last, last - 1, last - 255, last - 256}
	for u := int64(0); u < 3*extentPages; u++ {
		units = append(units, u)
	}
	for _, u := range units {
		idx, first, length := extentOf(u)
		if u < first || u >= first+length || length > extentPages || length&(length-1) != 0 || first%length != 0 {
			t.Fatalf("unit %d: extent %d = [%d, +%d)", u, idx, first, length)
		}
		if f, l := extentSpan(idx); f != first || l != length {
			t.Fatalf("extentSpan(%d) = %d, %d; extentOf(%d) says %d, %d", idx, f, l, u, first, length)
		}
	}
	for _, unit := range []int64{PageSize, slotSize} {
		s := &sharedSpace{sf: &sharedFile{unit: unit}}
		for _, off := range []int64{0, 5, 3*unit - 1, last*unit - 7, last * unit} {
			n := min(3*unit, math.MaxInt64-off)
			var sum int64
			s.each(off, n, false, func(pos, part, at int64) error {
				if part <= 0 || pos != off+sum || at != -1 {
					t.Fatalf("unit %d, offset %d: piece at %d of %d bytes (at %d) after %d", unit, off, pos, part, at, sum)
				}
				sum += part
				return nil
			})
			if sum != n {
				t.Errorf("unit %d, offset %d: pieces add up to %d of %d", unit, off, sum, n)
			}
		}
	}
}

// TestLastExtentPunch: the extent of a sealed file's last pages ends past
// math.MaxInt64 in the file's own offsets; a punch of one page of it
// frees that page, not the extent with the pages still in it.
func TestLastExtentPunch(t *testing.T) {
	const P = PageSize
	eachDiskTier(t, func(t *testing.T, p *Pool) {
		f := p.NewFile(newAcct())
		defer f.Close()
		end := int64(MaxSize)
		data := pat(3*P, 4)
		if _, err := f.WriteAt(data, end-3*P); errors.Is(err, syscall.EFBIG) {
			// A plain file this large has a dedicated spill file, where
			// offset X is offset X: ext4 stops at 16 TiB.
			t.Skipf("the spill disk: %v", err)
		} else if err != nil {
			t.Fatal(err)
		}
		if err := f.PunchHole(end-3*P, P); err != nil {
			t.Fatal(err)
		}
		p.reclaim.drain()
		buf := make([]byte, 3*P)
		if n, err := f.ReadAt(buf, end-3*P); n != len(buf) || err != nil || !bytes.Equal(buf, image(3*P, P, data[P:])) {
			t.Errorf("after punching the first of the last 3 pages: %d, %v, equal %v", n, err, bytes.Equal(buf, image(3*P, P, data[P:])))
		}
		if f.Allocated() != 2*P {
			t.Errorf("Allocated %d, want %d", f.Allocated(), 2*P)
		}
	})
}

// TestDiskWorkAnnounced: every freeing that goes to the disk, queued or
// done by the caller when the queue is full, is announced through
// Config.DiskWork first, so that the daemon can give it a CPU of its own
// before a system call that may block; a drain that frees nothing is not.
func TestDiskWorkAnnounced(t *testing.T) {
	var announced atomic.Int64
	p, err := NewPool(Config{Dir: t.TempDir(), RAMBudget: 1 << 20, DiskWork: func() { announced.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	p.reclaim.drain()
	if n := announced.Load(); n != 0 {
		t.Fatalf("a drain with nothing to free announced disk work %d times", n)
	}
	f := p.NewFile(newAcct())
	if _, err := f.WriteAt([]byte("x"), 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	p.reclaim.drain()
	if n := announced.Load(); n != 1 {
		t.Fatalf("a queued free announced disk work %d times, want 1", n)
	}

	// With the queue full, the caller frees, and announces it too.
	unblock := blockReclaimer(t, p)
	files := onePageFiles(t, p, reclaimQueue+1)
	for _, f := range files[:reclaimQueue] {
		f.Close()
	}
	was := announced.Load()
	files[reclaimQueue].Close()
	if n := announced.Load(); n != was+1 {
		t.Errorf("a close that freed its own space with the queue full announced disk work %d times, want 1", n-was)
	}
	unblock()
}
