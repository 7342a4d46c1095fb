package test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// directRead reads n bytes at off with O_DIRECT: past the page cache, and
// so past a mapping's pages, straight from spoolfs.
func directRead(t testing.TB, p string, off, n int64) []byte {
	t.Helper()
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_DIRECT, 0)
	if err != nil {
		t.Fatalf("open O_DIRECT %s: %v", p, err)
	}
	defer unix.Close(fd)
	// Page-aligned buffer, as O_DIRECT may require.
	raw := make([]byte, n+4096)
	pad := int64(4096-uintptr(unsafe.Pointer(&raw[0]))%4096) % 4096
	buf := raw[pad : pad+n]
	got, err := unix.Pread(fd, buf, off)
	if err != nil || int64(got) != n {
		t.Fatalf("O_DIRECT pread of %d bytes at %d: %d, %v", n, off, got, err)
	}
	return buf
}

// A process must not touch a mapping of a file that it serves itself: a
// page fault on it waits for the FUSE server, and if the Go runtime
// stops the world meanwhile the server never answers (the goroutine in
// the fault cannot be preempted). So the mappings live in a helper
// process, this test binary re-executed, driven one command a line.

const mmapHelperEnv = "SPOOLFS_TEST_MMAP_HELPER"

func init() {
	if os.Getenv(mmapHelperEnv) == "1" {
		os.Exit(mmapHelper(os.Stdin, os.Stdout))
	}
}

// mmapHelper serves commands on in, one reply line each on out:
//
//	map PATH SIZE     open PATH read-write and map SIZE bytes shared
//	write OFF HEX     store the bytes at OFF in the mapping
//	sum OFF LEN       SHA-256 of the mapping's bytes [OFF, OFF+LEN)
//	sync              msync(MS_SYNC) the mapping
//	unmap             munmap it and close the file
//	closefd           close the file, keeping the mapping
func mmapHelper(in io.Reader, out io.Writer) int {
	var mm []byte
	var fd = -1
	sc := bufio.NewScanner(in)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		reply, err := "", error(nil)
		num := func(i int) int {
			n, e := strconv.Atoi(f[i])
			if e != nil && err == nil {
				err = e
			}
			return n
		}
		switch f[0] {
		case "map":
			size := num(2)
			if fd, err = unix.Open(f[1], unix.O_RDWR, 0); err == nil {
				mm, err = unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
			}
		case "write":
			var b []byte
			if b, err = hex.DecodeString(f[2]); err == nil {
				copy(mm[num(1):], b)
			}
		case "sum":
			off := num(1)
			reply = fmt.Sprintf("%x", sha256.Sum256(mm[off:off+num(2)]))
		case "sync":
			err = unix.Msync(mm, unix.MS_SYNC)
		case "unmap":
			err = unix.Munmap(mm)
			unix.Close(fd)
			mm, fd = nil, -1
		case "closefd":
			err = unix.Close(fd)
			fd = -1
		default:
			err = fmt.Errorf("unknown command %q", f[0])
		}
		if err != nil {
			fmt.Fprintf(out, "err %v\n", err)
		} else {
			fmt.Fprintf(out, "ok %s\n", reply)
		}
	}
	return 0
}

// mapping is a shared writable mapping held by a helper process.
type mapping struct {
	*helperChild
	size int
}

// mapShared maps the first size bytes of p, shared and writable, in a
// helper process. Register it after the mount: its cleanup must run
// before the unmount.
func mapShared(t testing.TB, p string, size int) *mapping {
	t.Helper()
	m := &mapping{startHelperChild(t, "mmap helper", mmapHelperEnv, ""), size}
	t.Cleanup(m.close)
	m.do("map %s %d", p, size)
	return m
}

func (m *mapping) do(format string, args ...any) string {
	m.t.Helper()
	status, reply := m.ask(format, args...)
	if status != "ok" {
		m.t.Fatalf("mmap helper: %s: %s", fmt.Sprintf(format, args...), reply)
	}
	return reply
}

// write stores b at off through the mapping.
func (m *mapping) write(off int, b []byte) { m.t.Helper(); m.do("write %d %x", off, b) }

// equal reports whether the mapping holds want, which covers all of it.
func (m *mapping) equal(want []byte) bool {
	m.t.Helper()
	return m.do("sum 0 %d", m.size) == fmt.Sprintf("%x", sha256.Sum256(want[:m.size]))
}

func (m *mapping) sync() { m.t.Helper(); m.do("sync") }

func (m *mapping) unmap() { m.t.Helper(); m.do("unmap") }

func (m *mapping) close() {
	if err := m.stop(); err != nil {
		m.t.Errorf("mmap helper: %v", err)
	}
}

// TestMmapShared checks that a shared writable mapping, read(2) and
// write(2) see one another's changes, and that msync reaches spoolfs.
func TestMmapShared(t *testing.T) {
	tiers(t, func(t *testing.T, o mountOpts) {
		m := newMount(t, o)
		const size = 256 << 10
		p := m.path("mapped")
		data := randBytes(1, size)
		writeFile(t, p, data)
		f := openRW(t, p)
		mm := mapShared(t, p, size)
		if !mm.equal(data) {
			t.Fatalf("mapping differs from the file")
		}

		// mmap -> read
		setOld(t, p)
		t0 := time.Now()
		for off, s := range map[int]string{100: "written through the mapping", size - 50: "and at the end"} {
			mm.write(off, []byte(s))
			copy(data[off:], s)
		}
		got := make([]byte, size)
		if _, err := f.ReadAt(got, 0); err != nil || !bytes.Equal(got, data) {
			t.Errorf("pread does not see the mapping's writes (%v): differs at %d", err, firstDiff(got, data))
		}
		mm.sync()
		if got := directRead(t, p, 0, size); !bytes.Equal(got, data) {
			t.Errorf("after msync spoolfs holds different bytes at %d", firstDiff(got, data))
		}
		// As on tmpfs, a write through a mapping sets mtime and ctime.
		if tm := timesOf(t, p); tm.mtime.Before(t0) || tm.ctime.Before(t0) {
			t.Errorf("after writing through the mapping and msync: mtime %v, ctime %v; want both after %v", tm.mtime, tm.ctime, t0)
		}

		// write -> mmap
		if _, err := f.WriteAt([]byte("written with pwrite"), 70000); err != nil {
			t.Fatal(err)
		}
		copy(data[70000:], "written with pwrite")
		if !mm.equal(data) {
			t.Errorf("mapping does not see pwrite")
		}
		if got := directRead(t, p, 0, size); !bytes.Equal(got, data) {
			t.Errorf("after pwrite spoolfs holds different bytes at %d", firstDiff(got, data))
		}

		// Writes through a second, independent mapping show in the first.
		mm2 := mapShared(t, p, size)
		mm2.write(200000, []byte("second mapping"))
		copy(data[200000:], "second mapping")
		if !mm.equal(data) {
			t.Errorf("first mapping does not see the second's writes")
		}
		mm2.sync()
		mm2.unmap()
		mm.unmap()
		f.Close()
		checkContent(t, p, data)
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
		waitUsage(t, m, baseline)
	})
}

// TestMmapSpillWhileMapped grows a mapped RAM file past the threshold with
// pwrite: it moves to disk under the mapping, and neither the mapped bytes
// nor later writes through the mapping may be lost.
func TestMmapSpillWhileMapped(t *testing.T) {
	const threshold = 1 << 20
	m := newMount(t, mountOpts{threshold: threshold, ram: 16 << 20})
	const size = 512 << 10
	p := m.path("mapped")
	data := randBytes(2, size)
	writeFile(t, p, data)
	f := openRW(t, p)
	mm := mapShared(t, p, size)
	mm.write(1000, []byte("dirty before the spill"))
	copy(data[1000:], "dirty before the spill")
	if got := m.FS.Pool().Stats().DiskFiles; got != 0 {
		t.Fatalf("%d files on disk before the spill", got)
	}
	tail := randBytes(3, 64<<10)
	if _, err := f.WriteAt(tail, 2*threshold); err != nil {
		t.Fatal(err)
	}
	if got := m.FS.Pool().Stats().DiskFiles; got != 1 {
		t.Errorf("grown past the threshold while mapped, yet %d files on disk", got)
	}
	checkSpillDirUnnamed(t, m)
	if !mm.equal(data) {
		t.Errorf("mapping changed by the spill")
	}
	mm.write(300000, []byte("dirty after the spill"))
	copy(data[300000:], "dirty after the spill")
	mm.sync()
	if got := directRead(t, p, 0, size); !bytes.Equal(got, data) {
		t.Errorf("mapped range on disk differs at %d", firstDiff(got, data))
	}
	mm.unmap()
	f.Close()
	want := append(append(data, make([]byte, 2*threshold-size)...), tail...)
	checkContent(t, p, want)
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	waitUsage(t, m, baseline)
}

// cachedBytes is how much of p the kernel holds in its page cache.
func cachedBytes(t testing.TB, p string) int64 {
	t.Helper()
	fd, err := unix.Open(p, unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	var st unix.Cachestat_t
	if err := unix.Cachestat(uint(fd), &unix.CachestatRange{}, &st, 0); err != nil {
		t.Fatalf("cachestat %s: %v", p, err)
	}
	return int64(st.Cache) * int64(os.Getpagesize())
}

// TestWriteOnlyOpen: a write-only open writes past the page cache (spoolfs
// answers it with FOPEN_DIRECT_IO), yet a cached reader and a shared
// mapping of the same file, even one with a dirty page under the write,
// see every byte.
func TestWriteOnlyOpen(t *testing.T) {
	tiers(t, func(t *testing.T, o mountOpts) {
		m := newMount(t, o)
		const size = 256 << 10
		p := m.path("f")
		data := randBytes(3, size)
		wo, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer wo.Close()
		if _, err := wo.Write(data); err != nil {
			t.Fatal(err)
		}
		if c := cachedBytes(t, p); c != 0 {
			t.Errorf("after writing %d bytes through a write-only open, %d bytes are in the page cache; want 0", size, c)
		}

		rw := openRW(t, p)
		got := make([]byte, size)
		if _, err := rw.ReadAt(got, 0); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("read back (%v): differs at %d", err, firstDiff(got, data))
		}
		if c := cachedBytes(t, p); c == 0 {
			t.Fatalf("a read through a read-write open left nothing in the page cache")
		}
		mm := mapShared(t, p, size)
		mm.write(1000, []byte("dirty in the mapping"))
		copy(data[1000:], "dirty in the mapping")
		for off, s := range map[int64]string{1100: "same page, written directly", 100000: "a cached page, written directly", size - 10: "and past the end"} {
			if _, err := wo.WriteAt([]byte(s), off); err != nil {
				t.Fatal(err)
			}
			if end := off + int64(len(s)); end > int64(len(data)) {
				data = append(data, make([]byte, end-int64(len(data)))...)
			}
			copy(data[off:], s)
		}
		if fi, err := rw.Stat(); err != nil || fi.Size() != int64(len(data)) {
			t.Fatalf("size after extending through the write-only open: %v, %v; want %d", fi.Size(), err, len(data))
		}
		got = make([]byte, len(data))
		if _, err := rw.ReadAt(got, 0); err != nil || !bytes.Equal(got, data) {
			t.Errorf("cached reader (%v): differs at %d", err, firstDiff(got, data))
		}
		if !mm.equal(data) {
			t.Errorf("the mapping does not see the direct writes, or lost its own")
		}
		mm.sync()
		if got := directRead(t, p, 0, int64(len(data))); !bytes.Equal(got, data) {
			t.Errorf("spoolfs holds different bytes at %d", firstDiff(got, data))
		}
		mm.unmap()
		rw.Close()
		checkContent(t, p, data)
	})
}
