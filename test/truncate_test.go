package test

import (
	"os"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// openRW opens p read-write (creating it) and closes it at the end of the
// test.
func openRW(t testing.TB, p string) *os.File {
	t.Helper()
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// preadBack reads n bytes at off as spoolfs holds them.
func preadBack(t testing.TB, f *os.File, off, n int64) []byte {
	t.Helper()
	dropCache(t, f)
	p := make([]byte, n)
	got, err := f.ReadAt(p, off)
	if err != nil {
		t.Fatalf("pread %d bytes at %d: got %d, %v", n, off, got, err)
	}
	return p
}

func wantBlocks(t testing.TB, f *os.File, wantBytes int64, what string) {
	t.Helper()
	if got := fstat(t, f).Blocks * 512; got != wantBytes {
		t.Errorf("%s: st_blocks*512 = %d, want %d", what, got, wantBytes)
	}
}

func wantSize(t testing.TB, f *os.File, want int64, what string) {
	t.Helper()
	if got := fstat(t, f).Size; got != want {
		t.Errorf("%s: st_size = %d, want %d", what, got, want)
	}
}

// TestTruncate shrinks files and grows them again: the regrown part must
// read as zeros, in RAM and on disk, whether or not the cut is on a page
// boundary.
func TestTruncate(t *testing.T) {
	tiers(t, func(t *testing.T, o mountOpts) {
		m := newMount(t, o)
		for _, cut := range []int64{0, 1, 5000, 8192, 12000} {
			p := m.path("t")
			data := randBytes(uint64(cut), 4*4096+100)
			writeFile(t, p, data)
			if err := os.Truncate(p, cut); err != nil {
				t.Fatal(err)
			}
			checkContent(t, p, data[:cut])
			if got, want := lstat(t, p).Blocks*512, (cut+4095)/4096*4096; got != want {
				t.Errorf("cut at %d: st_blocks*512 = %d, want %d", cut, got, want)
			}
			// Grow with ftruncate, then with a write past the end.
			f := openRW(t, p)
			if err := f.Truncate(int64(len(data))); err != nil {
				t.Fatal(err)
			}
			want := append(append([]byte(nil), data[:cut]...), make([]byte, int64(len(data))-cut)...)
			checkContent(t, p, want)
			if err := f.Truncate(cut); err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt([]byte("end"), int64(len(data))); err != nil {
				t.Fatal(err)
			}
			checkContent(t, p, append(want, "end"...))
			f.Close()
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
		}
		waitUsage(t, m, baseline)
	})
}

// TestTruncatePastThreshold grows a RAM file past the spill threshold with
// truncate: it moves to disk with its content, and shrinking it back keeps
// it correct.
func TestTruncatePastThreshold(t *testing.T) {
	const threshold = 1 << 20
	m := newMount(t, mountOpts{threshold: threshold, ram: 16 << 20})
	p := m.path("t")
	data := randBytes(1, 100<<10)
	writeFile(t, p, data)
	if got := m.FS.Pool().Stats().DiskFiles; got != 0 {
		t.Fatalf("a 100 KiB file with a 1 MiB threshold is on disk")
	}
	if err := os.Truncate(p, threshold+1); err != nil {
		t.Fatal(err)
	}
	if got := m.FS.Pool().Stats().DiskFiles; got != 1 {
		t.Errorf("truncated past the threshold, yet %d files on disk", got)
	}
	checkSpillDirUnnamed(t, m)
	checkContent(t, p, append(append([]byte(nil), data...), make([]byte, threshold+1-len(data))...))
	if got := lstat(t, p).Blocks * 512; got != 100<<10 {
		t.Errorf("after growing with truncate, st_blocks*512 = %d, want %d", got, 100<<10)
	}
	if err := os.Truncate(p, 50000); err != nil {
		t.Fatal(err)
	}
	checkContent(t, p, data[:50000])
	if err := os.Truncate(p, 100<<10); err != nil {
		t.Fatal(err)
	}
	checkContent(t, p, append(append([]byte(nil), data[:50000]...), make([]byte, 100<<10-50000)...))
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	waitUsage(t, m, baseline)
}

// TestSparse writes one byte far into an empty file: one page is
// allocated, the rest is a hole that reads as zeros. At 10 MiB the file
// stays in RAM on the RAM tier; at 100 MiB it is past every threshold.
func TestSparse(t *testing.T) {
	tiers(t, func(t *testing.T, o mountOpts) {
		m := newMount(t, o)
		for _, off := range []int64{10 << 20, 100 << 20} {
			f := openRW(t, m.path("sparse"))
			if _, err := f.WriteAt([]byte{0xAB}, off); err != nil {
				t.Fatal(err)
			}
			wantSize(t, f, off+1, "one byte far out")
			wantBlocks(t, f, 4096, "one byte far out")
			if u := m.Quota.Usage(); u.Bytes != 4096 {
				t.Errorf("quota charges %d bytes for one page", u.Bytes)
			}
			onDisk := off+1 > o.threshold
			if got := m.FS.Pool().Stats().DiskFiles; (got == 1) != onDisk {
				t.Errorf("size %d, threshold %d: %d files on disk", off+1, o.threshold, got)
			}
			for _, at := range []int64{0, off / 2, off - 4096} {
				if !allZero(preadBack(t, f, at, 4096)) {
					t.Errorf("hole at %d does not read as zeros", at)
				}
			}
			if got := preadBack(t, f, off-10, 11); !allZero(got[:10]) || got[10] != 0xAB {
				t.Errorf("around the byte: %x", got)
			}
			if pos, err := unix.Seek(int(f.Fd()), 0, unix.SEEK_DATA); err != nil || pos != off-off%4096 {
				t.Errorf("SEEK_DATA from 0: %d, %v; want %d", pos, err, off-off%4096)
			}
			f.Close()
			if err := os.Remove(m.path("sparse")); err != nil {
				t.Fatal(err)
			}
			waitUsage(t, m, baseline)
		}
	})
}

// TestFallocate covers the fallocate modes tmpfs supports, and refuses the
// others with EOPNOTSUPP as tmpfs does.
func TestFallocate(t *testing.T) {
	const keep, punch = unix.FALLOC_FL_KEEP_SIZE, unix.FALLOC_FL_PUNCH_HOLE
	tiers(t, func(t *testing.T, o mountOpts) {
		m := newMount(t, o)
		t.Run("mode 0", func(t *testing.T) {
			f := openRW(t, m.path("alloc"))
			if err := unix.Fallocate(int(f.Fd()), 0, 0, 1<<20); err != nil {
				t.Fatal(err)
			}
			wantSize(t, f, 1<<20, "fallocate 1 MiB")
			wantBlocks(t, f, 1<<20, "fallocate 1 MiB")
			if !allZero(preadBack(t, f, 0, 1<<20)) {
				t.Errorf("fallocated range does not read as zeros")
			}
			// Inside the file, over written data: nothing changes.
			data := randBytes(1, 8192)
			if _, err := f.WriteAt(data, 4096); err != nil {
				t.Fatal(err)
			}
			if err := unix.Fallocate(int(f.Fd()), 0, 0, 64<<10); err != nil {
				t.Fatal(err)
			}
			wantSize(t, f, 1<<20, "fallocate inside the file")
			checkContent(t, f.Name(), append(append(make([]byte, 4096), data...), make([]byte, 1<<20-4096-8192)...))
			// Past the end, from an unaligned offset.
			if err := unix.Fallocate(int(f.Fd()), 0, 1<<20+100, 5000); err != nil {
				t.Fatal(err)
			}
			wantSize(t, f, 1<<20+5100, "fallocate past the end")
			wantBlocks(t, f, 1<<20+8192, "fallocate past the end")
			if u := m.Quota.Usage(); u.Bytes != 1<<20+8192 {
				t.Errorf("quota charges %d bytes, want %d", u.Bytes, 1<<20+8192)
			}
		})
		t.Run("KEEP_SIZE", func(t *testing.T) {
			f := openRW(t, m.path("keep"))
			data := randBytes(2, 10000)
			if _, err := f.Write(data); err != nil {
				t.Fatal(err)
			}
			wantBlocks(t, f, 12288, "10000 bytes written")
			if err := unix.Fallocate(int(f.Fd()), keep, 0, 1<<20); err != nil {
				t.Fatal(err)
			}
			wantSize(t, f, 10000, "fallocate KEEP_SIZE")
			wantBlocks(t, f, 1<<20, "fallocate KEEP_SIZE")
			checkContent(t, f.Name(), data)
			// The preallocated pages past the end read as zeros once the
			// file grows over them.
			if err := f.Truncate(1 << 20); err != nil {
				t.Fatal(err)
			}
			wantBlocks(t, f, 1<<20, "growing over preallocated pages")
			if !allZero(preadBack(t, f, 10000, 1<<20-10000)) {
				t.Errorf("preallocated pages do not read as zeros")
			}
		})
		t.Run("past the end", func(t *testing.T) {
			// Pages preallocated past the end with KEEP_SIZE go with a punch
			// that covers them, stay allocated when the file grows into part
			// of them, and go with a truncate below them; figures from tmpfs.
			before := m.Quota.Usage()
			f := openRW(t, m.path("prealloc"))
			prealloc := func() {
				t.Helper()
				if err := f.Truncate(0); err != nil {
					t.Fatal(err)
				}
				if _, err := f.WriteAt(randBytes(5, 10000), 0); err != nil {
					t.Fatal(err)
				}
				if err := unix.Fallocate(int(f.Fd()), keep, 0, 1<<20); err != nil {
					t.Fatal(err)
				}
				wantSize(t, f, 10000, "KEEP_SIZE preallocation of 1 MiB")
				wantBlocks(t, f, 1<<20, "KEEP_SIZE preallocation of 1 MiB")
			}
			prealloc()
			if err := unix.Fallocate(int(f.Fd()), punch|keep, 0, 2<<20); err != nil {
				t.Fatal(err)
			}
			wantSize(t, f, 10000, "punch of 2 MiB")
			wantBlocks(t, f, 0, "punch of 2 MiB over a 10000-byte file preallocated to 1 MiB")
			if !allZero(preadBack(t, f, 0, 10000)) {
				t.Errorf("punched file does not read as zeros")
			}

			prealloc()
			if err := f.Truncate(20000); err != nil {
				t.Fatal(err)
			}
			wantSize(t, f, 20000, "truncate up into the preallocation")
			wantBlocks(t, f, 1<<20, "truncate up into the preallocation")
			if !allZero(preadBack(t, f, 10000, 10000)) {
				t.Errorf("grown part over preallocated pages does not read as zeros")
			}

			prealloc()
			if err := f.Truncate(5000); err != nil {
				t.Fatal(err)
			}
			wantBlocks(t, f, 8192, "truncate to 5000 below a 1 MiB preallocation")
			if u := m.Quota.Usage(); u.Bytes-before.Bytes != 8192 {
				t.Errorf("quota charges %d bytes for a file of 2 pages", u.Bytes-before.Bytes)
			}
			f.Close()
			if err := os.Remove(f.Name()); err != nil {
				t.Fatal(err)
			}
		})
		t.Run("PUNCH_HOLE", func(t *testing.T) {
			f := openRW(t, m.path("punch"))
			data := randBytes(3, 1<<20)
			if _, err := f.Write(data); err != nil {
				t.Fatal(err)
			}
			before := m.Quota.Usage()
			if err := unix.Fallocate(int(f.Fd()), punch|keep, 256<<10, 256<<10); err != nil {
				t.Fatal(err)
			}
			clear(data[256<<10 : 512<<10])
			wantSize(t, f, 1<<20, "punch")
			wantBlocks(t, f, 768<<10, "punch of 256 KiB")
			if u := m.Quota.Usage(); u.Bytes != before.Bytes-256<<10 {
				t.Errorf("punching 256 KiB: quota bytes %d -> %d", before.Bytes, u.Bytes)
			}
			checkContent(t, f.Name(), data)
			// Unaligned: zeros, but no whole page is freed.
			if err := unix.Fallocate(int(f.Fd()), punch|keep, 1000, 4000); err != nil {
				t.Fatal(err)
			}
			clear(data[1000:5000])
			wantBlocks(t, f, 768<<10, "punch within pages")
			checkContent(t, f.Name(), data)
			// To the end and beyond: the size stays.
			if err := unix.Fallocate(int(f.Fd()), punch|keep, 1<<20-4096, 1<<20); err != nil {
				t.Fatal(err)
			}
			clear(data[1<<20-4096:])
			wantSize(t, f, 1<<20, "punch past the end")
			wantBlocks(t, f, 768<<10-4096, "punch of the last page")
			checkContent(t, f.Name(), data)
		})
		t.Run("unsupported", func(t *testing.T) {
			f := openRW(t, m.path("unsupported"))
			data := randBytes(4, 64<<10)
			if _, err := f.Write(data); err != nil {
				t.Fatal(err)
			}
			for name, mode := range map[string]uint32{
				"COLLAPSE_RANGE":       unix.FALLOC_FL_COLLAPSE_RANGE,
				"INSERT_RANGE":         unix.FALLOC_FL_INSERT_RANGE,
				"ZERO_RANGE":           unix.FALLOC_FL_ZERO_RANGE,
				"ZERO_RANGE|KEEP_SIZE": unix.FALLOC_FL_ZERO_RANGE | keep,
				"PUNCH_HOLE alone":     punch,
				"UNSHARE_RANGE":        unix.FALLOC_FL_UNSHARE_RANGE,
			} {
				wantErrno(t, unix.Fallocate(int(f.Fd()), mode, 0, 4096), syscall.EOPNOTSUPP, "fallocate "+name)
			}
			wantErrno(t, unix.Fallocate(int(f.Fd()), punch|keep, 0, 0), syscall.EINVAL, "fallocate of length 0")
			wantSize(t, f, 64<<10, "refused fallocates")
			checkContent(t, f.Name(), data)
			// Mode 0 still works after the refusals.
			if err := unix.Fallocate(int(f.Fd()), 0, 0, 128<<10); err != nil {
				t.Errorf("fallocate mode 0 after refusals: %v", err)
			}
		})
		checkUsageMatchesTree(t, m)
		for _, name := range listNames(t, m.Dir) {
			if err := os.Remove(m.path(name)); err != nil {
				t.Fatal(err)
			}
		}
		waitUsage(t, m, baseline)
	})
}

// TestSeekDataHole checks SEEK_DATA and SEEK_HOLE on a file with a hole in
// the middle and one at the end.
func TestSeekDataHole(t *testing.T) {
	tiers(t, func(t *testing.T, o mountOpts) {
		m := newMount(t, o)
		f := openRW(t, m.path("holey"))
		const chunk, gap = 64 << 10, 1 << 20
		if _, err := f.WriteAt(randBytes(1, chunk), 0); err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt(randBytes(2, chunk), gap); err != nil {
			t.Fatal(err)
		}
		size := int64(gap + chunk)
		fd := int(f.Fd())
		seek := func(off int64, whence int, want int64) {
			t.Helper()
			name := map[int]string{unix.SEEK_DATA: "SEEK_DATA", unix.SEEK_HOLE: "SEEK_HOLE"}[whence]
			got, err := unix.Seek(fd, off, whence)
			if want < 0 {
				wantErrno(t, err, syscall.ENXIO, name+" at or past the end")
				return
			}
			if err != nil || got != want {
				t.Errorf("%s from %d: %d, %v; want %d", name, off, got, err, want)
			}
		}
		seek(0, unix.SEEK_DATA, 0)
		seek(100, unix.SEEK_DATA, 100)
		seek(0, unix.SEEK_HOLE, chunk)
		seek(chunk-1, unix.SEEK_HOLE, chunk)
		seek(chunk, unix.SEEK_HOLE, chunk)
		seek(chunk, unix.SEEK_DATA, gap)
		seek(300<<10, unix.SEEK_DATA, gap)
		seek(gap, unix.SEEK_HOLE, size)
		seek(gap+10, unix.SEEK_DATA, gap+10)
		seek(size-1, unix.SEEK_HOLE, size)
		seek(size, unix.SEEK_DATA, -1)
		seek(size, unix.SEEK_HOLE, -1)
		// A hole at the end.
		if err := f.Truncate(4 << 20); err != nil {
			t.Fatal(err)
		}
		seek(gap, unix.SEEK_HOLE, size)
		seek(size, unix.SEEK_DATA, -1)
		seek(size, unix.SEEK_HOLE, size)
		seek(3<<20, unix.SEEK_HOLE, 3<<20)
		f.Close()
		if err := os.Remove(m.path("holey")); err != nil {
			t.Fatal(err)
		}
		waitUsage(t, m, baseline)
	})
}
