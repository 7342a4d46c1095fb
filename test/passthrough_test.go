package test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// cachedPages is how many pages of f's own page cache (the FUSE file's,
// not its backing file's) are in memory.
func cachedPages(t testing.TB, f *os.File) uint64 {
	t.Helper()
	var st unix.Cachestat_t
	if err := unix.Cachestat(uint(f.Fd()), &unix.CachestatRange{}, &st, 0); err != nil {
		t.Fatalf("cachestat %s: %v", f.Name(), err)
	}
	return st.Cache
}

// writeDirect writes data to p through a write-only open, whose writes
// skip the FUSE file's page cache: afterwards it holds none of p.
func writeDirect(t testing.TB, p string, data []byte) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func openRead(t testing.TB, p string) *os.File {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func readAll(t testing.TB, f *os.File, size int) []byte {
	t.Helper()
	got := make([]byte, size+1)
	n, err := f.ReadAt(got, 0)
	if n != size {
		t.Fatalf("read %d bytes of %s, want %d: %v", n, f.Name(), size, err)
	}
	return got[:n]
}

// A spilled file read once costs one copy in the page cache, its backing
// file's: the reads go straight there, and the FUSE file caches nothing.
func TestPassthroughReadCachesOneCopy(t *testing.T) {
	requireFUSE(t)
	m := newMount(t, spilled)
	p := m.path("big")
	data := randBytes(1, 16<<20)
	writeDirect(t, p, data)
	f := openRead(t, p)
	if got := readAll(t, f, len(data)); !bytes.Equal(got, data) {
		t.Fatalf("read back differs at %d", firstDiff(got, data))
	}
	if pages := cachedPages(t, f); pages != 0 {
		t.Errorf("the FUSE file caches %d pages after one read, want 0: a second copy of the backing file's", pages)
	}
}

// openWith opens p with flag: while p is open through passthrough, the
// kernel lets an open in only if it joins (any other answer is EIO).
func openWith(t testing.TB, p string, flag int) *os.File {
	t.Helper()
	f, err := os.OpenFile(p, flag, 0)
	if err != nil {
		t.Fatalf("open %s with %#x: %v", p, flag, err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func readAt(t testing.TB, f *os.File, off int64, n int) []byte {
	t.Helper()
	got := make([]byte, n)
	read, err := f.ReadAt(got, off)
	if read != n {
		t.Fatalf("read %d bytes at %d: got %d, %v", n, off, read, err)
	}
	return got
}

// A passthrough reader reads back what other descriptors write, truncate
// and punch through the daemon, and the size they leave: there is one page
// cache, the backing file's, and the daemon keeps it the file's length.
// The other opens never fail, though the kernel allows only passthrough
// opens next to a passthrough one.
func TestPassthroughReaderSeesWrites(t *testing.T) {
	requireFUSE(t)
	m := newMount(t, spilled)
	p := m.path("f")
	const size = 1 << 20
	data := randBytes(2, size)
	writeDirect(t, p, data)
	r := openRead(t, p)
	readAll(t, r, size)

	w := openWith(t, p, os.O_RDWR)
	wo := openWith(t, p, os.O_WRONLY|os.O_APPEND)
	if _, err := w.WriteAt([]byte("hello"), 100); err != nil {
		t.Fatal(err)
	}
	if got := readAt(t, r, 100, 5); string(got) != "hello" {
		t.Errorf("reader sees %q after pwrite of hello", got)
	}
	if got := readAt(t, w, 100, 5); string(got) != "hello" {
		t.Errorf("writer reads %q back", got)
	}
	// Past the end, with a hole in between: the reader sees the new size
	// and reads across the old end.
	if _, err := w.WriteAt([]byte("tail"), size+8192); err != nil {
		t.Fatal(err)
	}
	if st := fstat(t, r); st.Size != size+8196 {
		t.Errorf("reader's fstat: size %d, want %d", st.Size, size+8196)
	}
	if got := readAt(t, r, size-4, 8200); !bytes.Equal(got[:4], data[size-4:]) || !allZero(got[4:8196]) || string(got[8196:]) != "tail" {
		t.Errorf("reader across the old end reads %q...%q", got[:4], got[8196:])
	}
	if _, err := wo.Write([]byte("app")); err != nil { // O_APPEND, through the daemon
		t.Fatal(err)
	}
	if got := readAt(t, r, size+8196, 3); string(got) != "app" {
		t.Errorf("reader sees %q after an append", got)
	}
	// Truncates both ways, and a punch.
	if err := w.Truncate(size / 2); err != nil {
		t.Fatal(err)
	}
	if n, _ := r.ReadAt(make([]byte, 10), size/2); n != 0 {
		t.Errorf("reader read %d bytes past a truncate", n)
	}
	if err := w.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if got := readAt(t, r, size/2, size/2); !allZero(got) {
		t.Error("a truncate that grows the file reads back non-zero")
	}
	if err := unix.Fallocate(int(w.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 0, 8192); err != nil {
		t.Fatal(err)
	}
	if got := readAt(t, r, 0, 8192); !allZero(got) {
		t.Error("reader sees data in a punched hole")
	}
	if got := readAt(t, r, 8192, 4096); !bytes.Equal(got, data[8192:12288]) {
		t.Error("reader sees the wrong bytes next to a punched hole")
	}
	// More readers, O_DIRECT among them, join.
	r2 := openRead(t, p)
	if got := readAt(t, r2, 8192, 4096); !bytes.Equal(got, data[8192:12288]) {
		t.Error("a second reader reads the wrong bytes")
	}
	if got := directRead(t, p, 8192, 4096); !bytes.Equal(got, data[8192:12288]) {
		t.Error("an O_DIRECT reader reads the wrong bytes")
	}
	if pages := cachedPages(t, r); pages != 0 {
		t.Errorf("the FUSE file caches %d pages: its reads did not pass through", pages)
	}
	for _, f := range []*os.File{r, r2, w, wo} {
		f.Close()
	}
	// What the writers wrote is counted. A file pinned for passthrough
	// stays dense (a shared mapping of its backing file could fill any
	// hole): the grow allocated, the punch wrote zeros.
	st := lstat(t, p)
	if want := int64(size); st.Blocks*512 != want {
		t.Errorf("st_blocks*512 = %d, want %d", st.Blocks*512, want)
	}
	checkUsageMatchesTree(t, m)
}

// A mapping through a read-write open that joins a passthrough reader
// maps the backing file: the reader sees stores to it, the mapping sees
// writes through the daemon.
func TestPassthroughSharedMapping(t *testing.T) {
	requireFUSE(t)
	m := newMount(t, spilled)
	p := m.path("f")
	data := randBytes(3, 64<<10)
	writeDirect(t, p, data)
	r := openRead(t, p)
	readAll(t, r, len(data))
	mm := mapShared(t, p, len(data))
	mm.write(4096, []byte("mapped"))
	if got := readAt(t, r, 4096, 6); string(got) != "mapped" {
		t.Errorf("reader sees %q after a store to the mapping", got)
	}
	copy(data[4096:], "mapped")
	w := openWith(t, p, os.O_WRONLY)
	if _, err := w.WriteAt([]byte("written"), 100); err != nil {
		t.Fatal(err)
	}
	copy(data[100:], "written")
	if !mm.equal(data) {
		t.Error("the mapping does not hold what was written through the daemon")
	}
	mm.do("unmap")
	w.Close()
	r.Close()
	checkContent(t, p, data)
}

// Opens that start in cached mode keep the file out of passthrough until
// they close; nothing fails either way round.
func TestPassthroughAfterCachedOpen(t *testing.T) {
	requireFUSE(t)
	m := newMount(t, spilled)
	p := m.path("f")
	data := randBytes(4, 256<<10)
	writeDirect(t, p, data)
	rw := openWith(t, p, os.O_RDWR)
	r := openRead(t, p)
	if got := readAll(t, r, len(data)); !bytes.Equal(got, data) {
		t.Fatal("read back differs")
	}
	if pages := cachedPages(t, r); pages == 0 {
		t.Error("a read-only open next to a cached one passed through")
	}
	rw.Close()
	r.Close()
	r = openRead(t, p)
	if got := readAll(t, r, len(data)); !bytes.Equal(got, data) {
		t.Fatal("read back differs")
	}
	mm := mapShared(t, p, len(data))
	if !mm.equal(data) {
		t.Error("mapping joined to a passthrough open differs")
	}
}

// A passthrough open outlives its file's name, as any open does: it reads
// on, and the bytes go at its close.
func TestPassthroughOutlivesName(t *testing.T) {
	requireFUSE(t)
	m := newMount(t, spilled)
	data := randBytes(5, 1<<20)
	p := m.path("f")
	writeDirect(t, p, data)
	r := openRead(t, p)
	readAll(t, r, len(data))
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, r, len(data)); !bytes.Equal(got, data) {
		t.Error("read after unlink differs")
	}
	r.Close()
	waitUsage(t, m, baseline)
}

// A session's end leaves a passthrough open reading on, as any open: its
// bytes go at its close.
func TestPassthroughOutlivesSession(t *testing.T) {
	m := mountBinary(t, "--spill-threshold", "0")
	d := sessNew(t, m.Dir)
	data := randBytes(5, 1<<20)
	p := filepath.Join(d, "f")
	writeDirect(t, p, data)
	r := openRead(t, p)
	readAll(t, r, len(data))
	if pages := cachedPages(t, r); pages != 0 {
		t.Errorf("the FUSE file caches %d pages: the daemon's reads did not pass through", pages)
	}
	sessCLI(t, "session", "rm", d)
	if got := readAll(t, r, len(data)); !bytes.Equal(got, data) {
		t.Error("read after the session's end differs")
	}
	r.Close()
	eventually(t, "the space back", func() bool { return sessStatus(t, m.Dir).Mount.Used == 0 })
}

// With the writeback cache the kernel has no passthrough: reads of spilled
// files come to the daemon, as before, and are right.
func TestPassthroughOffWithWritebackCache(t *testing.T) {
	requireFUSE(t)
	m := newMount(t, withOpts(spilled, func(o *mountOpts) { o.writeback = true }))
	p := m.path("f")
	data := randBytes(6, 1<<20)
	writeFile(t, p, data)
	f := openRead(t, p)
	dropCache(t, f)
	if got := readAll(t, f, len(data)); !bytes.Equal(got, data) {
		t.Fatal("read back differs")
	}
	if pages := cachedPages(t, f); pages == 0 {
		t.Error("the FUSE file caches nothing: its reads passed through, with the writeback cache on")
	}
}

// The daemon ends cleanly, leaving nothing in the spill directory, while a
// spilled file is open through passthrough.
func TestPassthroughOpenAtShutdown(t *testing.T) {
	requireFUSE(t)
	dir, spillDir := t.TempDir(), t.TempDir()
	d := startDaemon(t, dir, os.Stderr, "mount", "-f", "--spill-threshold", "0", "--spill-dir", spillDir, dir)
	p := filepath.Join(dir, "f")
	data := randBytes(7, 1<<20)
	writeDirect(t, p, data)
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got := readAll(t, f, len(data)); !bytes.Equal(got, data) {
		t.Fatal("read back differs")
	}
	if pages := cachedPages(t, f); pages != 0 {
		t.Errorf("the FUSE file caches %d pages: the daemon's reads did not pass through", pages)
	}
	stopDaemon(t, d)
	f.Close()
	checkNothingLeft(t, dir, spillDir)
}

// A write-only open, direct, does not keep a reader from passing through
// (the kernel minds only cached opens), and goes on writing through the
// daemon: the reader sees its writes. cp then cat, whose RELEASE of the
// written file often comes after cat's open, is this case.
func TestPassthroughNextToWriteOnlyOpen(t *testing.T) {
	requireFUSE(t)
	m := newMount(t, spilled)
	p := m.path("f")
	data := randBytes(8, 1<<20)
	w := openWith(t, p, os.O_WRONLY|os.O_CREATE)
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	r := openRead(t, p)
	if got := readAll(t, r, len(data)); !bytes.Equal(got, data) {
		t.Fatal("read back differs")
	}
	if pages := cachedPages(t, r); pages != 0 {
		t.Errorf("the FUSE file caches %d pages: the reads next to a write-only open did not pass through", pages)
	}
	if _, err := w.Write([]byte("more")); err != nil {
		t.Fatal(err)
	}
	if got := readAt(t, r, int64(len(data)), 4); string(got) != "more" {
		t.Errorf("reader sees %q after the writer's next write", got)
	}
	w.Close()
	r.Close()
	checkUsageMatchesTree(t, m)
}

// A mapping made through a read-write open that joined a passthrough
// reader maps the backing file, and outlives the descriptors: later opens
// must still see what it stores, so they pass through too.
func TestPassthroughMappingOutlivesOpens(t *testing.T) {
	requireFUSE(t)
	m := newMount(t, spilled)
	p := m.path("f")
	data := randBytes(9, 64<<10)
	writeDirect(t, p, data)
	r := openRead(t, p)
	readAll(t, r, len(data))
	mm := mapShared(t, p, len(data))
	mm.do("closefd")
	r.Close()
	// Every descriptor is closed; the mapping lives on.
	c := openWith(t, p, os.O_RDWR)
	if got := readAt(t, c, 4096, 6); !bytes.Equal(got, data[4096:4102]) {
		t.Fatalf("a later open reads %q", got)
	}
	mm.write(4096, []byte("second"))
	if got := readAt(t, c, 4096, 6); string(got) != "second" {
		t.Errorf("a later open reads %q, not what the mapping stored since", got)
	}
	copy(data[4096:], "second")
	mm.do("unmap")
	c.Close()
	checkContent(t, p, data)
}

// The quotas hold against a shared mapping of the backing file: a pinned
// file is dense, so the pages a mapping can reach are charged, and growing
// the file past the quota fails as it does without passthrough.
func TestPassthroughMappingWithinQuota(t *testing.T) {
	requireFUSE(t)
	m := newMount(t, withOpts(spilled, func(o *mountOpts) { o.size = 2 << 20 }))
	p := m.path("f")
	writeDirect(t, p, randBytes(10, 1<<20))
	r := openRead(t, p)
	readAll(t, r, 1<<20)
	mm := mapShared(t, p, 4<<20) // past the end: reachable once the file grows
	w := openWith(t, p, os.O_WRONLY)
	wantErrno(t, w.Truncate(4<<20), syscall.ENOSPC, "truncate past the quota")
	if err := w.Truncate(3 << 19); err != nil { // 1.5 MiB: within it
		t.Fatal(err)
	}
	used := m.Quota.Usage().Bytes
	if used < 3<<19 {
		t.Errorf("growing to 1.5 MiB charged %d bytes: the mapping could fill the rest for free", used)
	}
	mm.write(1<<20+4096, []byte("free?"))
	mm.do("sync")
	if got := m.Quota.Usage().Bytes; got != used {
		t.Errorf("a store through the mapping moved the usage from %d to %d", used, got)
	}
	mm.do("unmap")
	w.Close()
	r.Close()
	checkUsageMatchesTree(t, m)
}

// Opens of every kind, at once and in any order, on spilled files that
// pass through: the kernel refuses an open that does not fit its inode's
// mode with EIO, and none may ever see that, nor read a wrong byte.
func TestPassthroughOpenStorm(t *testing.T) {
	requireFUSE(t)
	m := newMount(t, spilled)
	const files, size = 3, 64 << 10
	data := randBytes(11, size)
	for i := range files {
		writeDirect(t, m.path(fmt.Sprint(i)), data)
	}
	flags := []int{os.O_RDONLY, os.O_RDONLY, os.O_RDONLY, os.O_RDWR, os.O_WRONLY, os.O_RDONLY | syscall.O_DIRECT}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := newStream(uint64(g))
			buf := make([]byte, 4096)
			for range 300 {
				var pick [2]byte
				rnd.fill(pick[:])
				p := m.path(fmt.Sprint(int(pick[0]) % files))
				flag := flags[int(pick[1])%len(flags)]
				f, err := os.OpenFile(p, flag, 0)
				if err != nil {
					errs <- fmt.Errorf("open with %#x: %w", flag, err)
					return
				}
				switch flag & syscall.O_ACCMODE {
				case os.O_RDONLY:
					// O_DIRECT wants an aligned buffer: read one page at
					// an aligned offset into a page-aligned slice.
					page := alignedPage()
					if _, err := f.ReadAt(page, 8192); err != nil || !bytes.Equal(page, data[8192:12288]) {
						errs <- fmt.Errorf("read with %#x: %v, right bytes: %v", flag, err, bytes.Equal(page, data[8192:12288]))
					}
				default:
					// Rewrite bytes with what they hold: every reader
					// still reads the same.
					if _, err := f.WriteAt(data[:len(buf)], 0); err != nil {
						errs <- fmt.Errorf("write with %#x: %w", flag, err)
					}
				}
				f.Close()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// alignedPage is a 4 KiB slice aligned for O_DIRECT.
func alignedPage() []byte {
	raw := make([]byte, 8192)
	pad := int(4096-uintptr(unsafe.Pointer(&raw[0]))%4096) % 4096
	return raw[pad : pad+4096]
}

// A spilled file written through a read-write open, whose writes go through
// the FUSE file's page cache, keeps no second copy there once it is closed:
// its bytes are in the spill file's page cache, which is what passthrough
// reads use. Left there, the copy held memory until the next read-only
// open, and the kernel dropped it in that open, on the reader's time
// (37 ms for 512 MiB: fio's warm read right after its write ran at 0.6x of
// the disk directory).
func TestSpilledCacheDroppedAtLastClose(t *testing.T) {
	requireFUSE(t)
	m := newMount(t, spilled)
	p := m.path("f")
	data := randBytes(3, 8<<20)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if pages := cachedPages(t, f); pages == 0 {
		t.Fatal("a write through a read-write open cached no pages: this test cannot tell a drop")
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	// A read-write open keeps the cache it finds (FOPEN_KEEP_CACHE), so it
	// can look without dropping anything itself.
	var pages uint64
	eventually(t, "the FUSE file's page cache dropped after the last close", func() bool {
		g, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer g.Close()
		pages = cachedPages(t, g)
		return pages == 0
	})
	if pages != 0 {
		t.Errorf("the closed spilled file still has %d pages in the FUSE file's cache", pages)
	}
	if got := readAll(t, openRead(t, p), len(data)); !bytes.Equal(got, data) {
		t.Fatalf("read back differs at %d", firstDiff(got, data))
	}
}
