package test

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
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
