package test

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/spoolfs/spoolfs/spill"
)

// smallSpillDir mounts a tmpfs of size bytes to serve as a spill directory,
// so that the spill disk can be filled. Call it before newMount: its
// cleanup must run after the mount's.
func smallSpillDir(t *testing.T, size int64) string {
	t.Helper()
	requireFUSE(t)
	dir := t.TempDir()
	if err := unix.Mount("spill-tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		t.Skipf("cannot mount a tmpfs for the spill dir: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			t.Errorf("unmounting the spill tmpfs: %v", err)
		}
	})
	return dir
}

// TestSpillDiskFull fills the spill disk itself: writes that need it fail
// with ENOSPC, what was written stays intact, a RAM file that cannot move
// to disk stays as it was, and room comes back with a delete.
func TestSpillDiskFull(t *testing.T) {
	const disk = 4 << 20
	const threshold = 64 << 10
	spillDir := smallSpillDir(t, disk)
	m := newMount(t, mountOpts{threshold: threshold, ram: 16 << 20, spillDir: spillDir})

	// A RAM file just under the threshold.
	small := randBytes(1, threshold-4096)
	writeFile(t, m.path("small"), small)

	// A spilled file written until the disk is full.
	big := m.path("big")
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	var written []byte
	for i := 0; ; i++ {
		chunk := randBytes(uint64(10+i), 256<<10)
		n, err := f.Write(chunk)
		written = append(written, chunk[:n]...)
		if err != nil {
			wantErrno(t, err, syscall.ENOSPC, "writing past the spill disk's size")
			break
		}
		if len(written) > 2*disk {
			t.Fatalf("wrote %d bytes to a %d-byte spill disk", len(written), disk)
		}
	}
	f.Close()
	if st := lstat(t, big); st.Size != int64(len(written)) {
		t.Errorf("after ENOSPC the file is %d bytes; %d were written", st.Size, len(written))
	}
	checkContent(t, big, written)
	checkSpillDirUnnamed(t, m)

	// The RAM file cannot move to disk: growing it past the threshold fails
	// and leaves it alone.
	usage := m.Quota.Usage()
	sf, err := os.OpenFile(m.path("small"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sf.Close()
	for what, op := range map[string]func() error{
		"write past the threshold": func() error {
			_, err := sf.WriteAt(make([]byte, 8192), threshold)
			return err
		},
		"truncate past the threshold": func() error { return sf.Truncate(threshold + 1) },
		"fallocate past the threshold": func() error {
			return unix.Fallocate(int(sf.Fd()), 0, 0, threshold+4096)
		},
	} {
		wantErrno(t, op(), syscall.ENOSPC, what+" with the spill disk full")
		if st := fstat(t, sf); st.Size != int64(len(small)) || st.Blocks*512 != int64(len(small)) {
			t.Errorf("%s refused, yet size %d, blocks*512 %d (want %d)", what, st.Size, st.Blocks*512, len(small))
		}
		checkContent(t, m.path("small"), small)
		if got := m.FS.Pool().Stats().DiskFiles; got != 1 {
			t.Errorf("%s refused: %d files on disk, want 1", what, got)
		}
		if u := m.Quota.Usage(); u != usage {
			t.Errorf("%s refused, yet quota usage %+v -> %+v", what, usage, u)
		}
	}
	// Writes that stay in RAM still work.
	if _, err := sf.WriteAt([]byte("still fine"), 100); err != nil {
		t.Errorf("a RAM write with the spill disk full: %v", err)
	}
	copy(small[100:], "still fine")
	checkContent(t, m.path("small"), small)

	// Deleting the big file frees the disk: the RAM file can now spill.
	if err := os.Remove(big); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the big file's spill file to be closed", func() bool { return m.FS.Pool().Stats().DiskFiles == 0 })
	if err := sf.Truncate(threshold + 1); err != nil {
		t.Errorf("truncate past the threshold after a delete: %v", err)
	}
	checkContent(t, m.path("small"), append(append([]byte(nil), small...), make([]byte, threshold+1-len(small))...))
	sf.Close()
	if err := os.Remove(m.path("small")); err != nil {
		t.Fatal(err)
	}
	waitUsage(t, m, baseline)
}

// TestRAMBudgetEviction keeps more small files than the RAM budget holds:
// the coldest move to disk, RAM never exceeds the budget, and every file
// reads back intact.
func TestRAMBudgetEviction(t *testing.T) {
	const budget = 1 << 20
	m := newMount(t, mountOpts{threshold: 512 << 10, ram: budget})
	var files [][]byte
	for i := range 12 {
		data := randBytes(uint64(i), 300<<10)
		files = append(files, data)
		writeFile(t, m.path(fmt.Sprintf("f%d", i)), data)
		if s := m.FS.Pool().Stats(); s.RAMBytes > budget {
			t.Errorf("after %d files: %d bytes of RAM held, budget %d", i+1, s.RAMBytes, budget)
		}
	}
	s := m.FS.Pool().Stats()
	if s.DiskFiles < 12-budget/(300<<10) || s.Files != 12 {
		t.Errorf("12 files of 300 KiB with a 1 MiB budget: %+v", s)
	}
	checkSpillDirUnnamed(t, m)
	for i, data := range files {
		checkContent(t, m.path(fmt.Sprintf("f%d", i)), data)
	}
	for i := range files {
		if err := os.Remove(m.path(fmt.Sprintf("f%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	waitUsage(t, m, baseline)
	eventually(t, "the pool to be empty", func() bool {
		s := m.FS.Pool().Stats()
		return s.Files == 0 && s.RAMBytes == 0 && s.DiskBytes == 0
	})
}

// TestConcurrentWriters runs writers on many files at once while they
// cross the threshold and push one another out of a small RAM budget.
func TestConcurrentWriters(t *testing.T) {
	const writers, size, chunk = 8, 2 << 20, 64 << 10
	m := newMount(t, mountOpts{threshold: 1 << 20, ram: 3 << 20})
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			data := randBytes(uint64(w), size)
			f, err := os.Create(m.path(fmt.Sprintf("w%d", w)))
			if err != nil {
				errs <- err
				return
			}
			defer f.Close()
			for off := 0; off < size; off += chunk {
				if _, err := f.WriteAt(data[off:off+chunk], int64(off)); err != nil {
					errs <- err
					return
				}
				// Read back an earlier chunk while others write.
				back := make([]byte, chunk)
				if _, err := f.ReadAt(back, int64(off/2/chunk*chunk)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for w := range writers {
		checkContent(t, m.path(fmt.Sprintf("w%d", w)), randBytes(uint64(w), size))
	}
	if s := m.FS.Pool().Stats(); s.DiskFiles != writers || s.RAMBytes != 0 {
		t.Errorf("all files past the threshold, yet pool stats %+v", s)
	}
	for _, name := range listNames(t, m.Dir) {
		if err := os.Remove(filepath.Join(m.Dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	waitUsage(t, m, baseline)
}

// TestSpillLargestFile: a file on a spoolfs may be spill.MaxSize bytes
// long, spilled in the clear or sealed, and no longer. truncate(2) and
// fallocate(2) past that are EFBIG, a write across it is cut short there,
// one at it is EFBIG; reads, writes, fallocate and punches near it work,
// and huge ranges cost no more than what the file holds.
// Sizes up to 2^63-1 used to be taken, and an --encrypt-spill daemon then
// panicked on a read or write at the end (a page's end overflowed): EIO
// and a stack trace, and a write's charge never given back. The spill dir
// is a tmpfs, which takes offsets up to 2^63-1 (ext4 stops at 16 TiB).
func TestSpillLargestFile(t *testing.T) {
	requireFUSE(t)
	for name, flags := range map[string][]string{"plain": nil, "sealed": {"--encrypt-spill"}} {
		t.Run(name, func(t *testing.T) {
			spillDir := smallSpillDir(t, 16<<20)
			dir := t.TempDir()
			args := append([]string{"mount", "-f", "--spill-threshold", "0", "--spill-dir", spillDir}, flags...)
			d := startDaemon(t, dir, os.Stderr, append(args, dir)...)
			keep := randBytes(1, 256<<10)
			writeFile(t, filepath.Join(dir, "keep"), keep)

			f, err := os.OpenFile(filepath.Join(dir, "big"), os.O_RDWR|os.O_CREATE, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			fd := int(f.Fd())
			const end = spill.MaxSize
			wantErrno(t, f.Truncate(math.MaxInt64), syscall.EFBIG, "truncate to 2^63-1")
			buf := []byte("xxxxxxxxxx")
			if n, err := unix.Pread(fd, buf, math.MaxInt64-10); n != 0 || err != nil {
				t.Fatalf("pread at 2^63-11 = %d, %v; want 0, nil (the end of the file)", n, err)
			}
			wantErrno(t, f.Truncate(end+1), syscall.EFBIG, "truncate past spill.MaxSize")
			if err := f.Truncate(end); err != nil {
				t.Fatalf("truncate to spill.MaxSize: %v", err)
			}
			if n, err := unix.Pread(fd, buf, end-10); n != 10 || err != nil || string(buf) != "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00" {
				t.Fatalf("pread of the last 10 bytes = %d, %v, %q; want 10 zeros", n, err, buf[:max(n, 0)])
			}
			if n, err := unix.Pwrite(fd, []byte("0123456789"), end-5); n != 5 || err != nil {
				t.Errorf("pwrite across spill.MaxSize = %d, %v; want 5 (cut short)", n, err)
			}
			_, err = unix.Pwrite(fd, []byte("x"), end)
			wantErrno(t, err, syscall.EFBIG, "pwrite at spill.MaxSize")
			if n, err := unix.Pread(fd, buf, end-10); n != 10 || err != nil || string(buf) != "\x00\x00\x00\x00\x0001234" {
				t.Errorf("pread back = %d, %v, %q", n, err, buf[:max(n, 0)])
			}
			wantErrno(t, unix.Fallocate(fd, 0, end-4096, 8192), syscall.EFBIG, "fallocate past spill.MaxSize")
			if err := unix.Fallocate(fd, unix.FALLOC_FL_KEEP_SIZE, end-3*4096, 4096); err != nil {
				t.Errorf("fallocate near spill.MaxSize: %v", err)
			}
			if err := unix.Fallocate(fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, end-4096, 4096); err != nil {
				t.Errorf("punching the last page: %v", err)
			}
			if n, err := unix.Pread(fd, buf, end-10); n != 10 || err != nil || string(buf) != "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00" {
				t.Errorf("pread after the punch = %d, %v, %q; want 10 zeros", n, err, buf[:max(n, 0)])
			}
			var st unix.Stat_t
			if err := unix.Fstat(fd, &st); err != nil || st.Size != end || st.Blocks != 4096/512 {
				t.Errorf("fstat: %v, size %d, %d blocks; want %d, 8 (the page fallocate added)", err, st.Size, st.Blocks, int64(end))
			}
			// Huge ranges cost what the file holds, not their length: a
			// petabyte is refused at once (the mount is smaller), and the
			// whole file is punched at once.
			wantErrno(t, unix.Fallocate(fd, unix.FALLOC_FL_KEEP_SIZE, 0, 1<<50), syscall.ENOSPC, "fallocate of a petabyte")
			if err := unix.Fallocate(fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 0, end); err != nil {
				t.Errorf("punching the whole file: %v", err)
			}
			if err := unix.Fstat(fd, &st); err != nil || st.Size != end || st.Blocks != 0 {
				t.Errorf("fstat after punching it all: %v, size %d, %d blocks; want %d, 0", err, st.Size, st.Blocks, int64(end))
			}
			f.Close()
			checkContent(t, filepath.Join(dir, "keep"), keep)
			stopDaemon(t, d)
		})
	}
}

// manySmallFiles writes n files of 4 KiB into a session directory of the
// mount at dir, failing at the first error, then reads back every 997th
// and the last.
func manySmallFiles(t *testing.T, dir string, n int) {
	t.Helper()
	session := filepath.Join(dir, "s")
	if err := os.Mkdir(session, 0o700); err != nil {
		t.Fatal(err)
	}
	content := func(i int) []byte {
		b := randBytes(uint64(i%64), 4096)
		copy(b, fmt.Sprintf("file %d\n", i))
		return b
	}
	// Four writers: the daemon answers their requests side by side, as
	// it would a parallel build's, and the run takes half the time.
	const writers = 4
	var wg sync.WaitGroup
	var failed atomic.Bool
	for w := range writers {
		wg.Go(func() {
			for i := w; i < n && !failed.Load(); i += writers {
				p := filepath.Join(session, fmt.Sprintf("f%06d", i))
				if err := os.WriteFile(p, content(i), 0o600); err != nil {
					t.Errorf("file %d of %d: %v", i, n, err)
					failed.Store(true)
				}
			}
		})
	}
	wg.Wait()
	if failed.Load() {
		t.FailNow()
	}
	for i := 0; i < n; i += 997 {
		checkContent(t, filepath.Join(session, fmt.Sprintf("f%06d", i)), content(i))
	}
	checkContent(t, filepath.Join(session, fmt.Sprintf("f%06d", n-1)), content(n-1))
}

// daemonFDs counts the daemon's open descriptors.
func daemonFDs(t *testing.T, pid int) int {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(fds)
}

// TestSpillManyFiles: with every byte spilled, 52,000 files of 4 KiB (past
// the ~19,000 descriptors spilled files once cost, one each) are written
// and read back, and the daemon (this process) holds no more descriptors
// for them than its shared spill files. In process: the race-built
// daemon binary takes minutes for as many files.
func TestSpillManyFiles(t *testing.T) {
	const files = 52000
	m := newMount(t, spilled)
	before := daemonFDs(t, os.Getpid())
	manySmallFiles(t, m.Dir, files)
	if got := daemonFDs(t, os.Getpid()); got > before+8 {
		t.Errorf("%d descriptors open after %d spilled files, %d before", got, files, before)
	}
	if st := m.FS.Pool().Stats(); st.DiskFiles != files {
		t.Errorf("%d files on disk, want %d", st.DiskFiles, files)
	}
}

// TestSpillManyFilesTightRAM: with a 16 MiB RAM budget, small files past
// what RAM holds move to disk however many they are: 26,000 files of 4 KiB
// (a new user of `--ram 16MiB` got ENOSPC at 23,072, with 39 GiB free)
// and the daemon's descriptors stay flat. The mount is set up as that
// flag sets it: a threshold of the whole budget.
func TestSpillManyFilesTightRAM(t *testing.T) {
	const files = 26000
	m := newMount(t, mountOpts{threshold: 16 << 20, ram: 16 << 20})
	before := daemonFDs(t, os.Getpid())
	manySmallFiles(t, m.Dir, files)
	if got := daemonFDs(t, os.Getpid()); got > before+8 {
		t.Errorf("%d descriptors open after %d files, %d before", got, files, before)
	}
	if st := m.FS.Pool().Stats(); st.DiskFiles < files-(16<<20)/4096 {
		t.Errorf("%d files on disk of %d, with RAM for %d", st.DiskFiles, files, (16<<20)/4096)
	}
}
