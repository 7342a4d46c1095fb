package test

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/spoolfs/spoolfs/quota"
)

// TestQuotaBytes fills an 8 MiB mount until ENOSPC and checks that what was
// written survives, that a refused write or fallocate changes nothing, that
// what needs no new page (overwrites, truncate up) still works as on
// tmpfs, and that deleting a file makes room at once.
func TestQuotaBytes(t *testing.T) {
	const size = 8 << 20
	tiersWith(t, func(o *mountOpts) { o.size = size }, func(t *testing.T, o mountOpts) {
		m := newMount(t, o)
		const fileSize = 1 << 20
		var files [][]byte
		var full error
		for i := 0; full == nil; i++ {
			data := randBytes(uint64(100+i), fileSize)
			f, err := os.Create(m.path(fmt.Sprintf("f%d", i)))
			if err != nil {
				t.Fatal(err)
			}
			n, err := f.Write(data)
			f.Close()
			full = err
			files = append(files, data[:n])
			if i > size/fileSize {
				t.Fatalf("wrote %d files of %d bytes to a %d-byte mount without ENOSPC", i+1, fileSize, size)
			}
		}
		wantErrno(t, full, syscall.ENOSPC, "writing past the mount's size")
		// Top the last file up page by page until not one more page fits.
		last := m.path(fmt.Sprintf("f%d", len(files)-1))
		f, err := os.OpenFile(last, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; ; i++ {
			page := randBytes(uint64(1000+i), 4096)
			n, err := f.Write(page)
			files[len(files)-1] = append(files[len(files)-1], page[:n]...)
			if err != nil {
				wantErrno(t, err, syscall.ENOSPC, "topping up")
				break
			}
		}
		f.Close()
		if u := m.Quota.Usage(); u.Bytes != size {
			t.Errorf("mount refused writes with %d of %d bytes used", u.Bytes, size)
		}
		for i, data := range files {
			checkContent(t, m.path(fmt.Sprintf("f%d", i)), data)
		}

		// On a full mount, nothing that needs a page may change a file.
		victim := m.path("f1")
		refused := func(what string, op func(f *os.File) error) {
			t.Helper()
			f, err := os.OpenFile(victim, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			before := fstat(t, f)
			usage := m.Quota.Usage()
			wantErrno(t, op(f), syscall.ENOSPC, what)
			after := fstat(t, f)
			if after.Size != before.Size || after.Blocks != before.Blocks {
				t.Errorf("%s refused, yet size %d -> %d, blocks %d -> %d", what, before.Size, after.Size, before.Blocks, after.Blocks)
			}
			if u := m.Quota.Usage(); u != usage {
				t.Errorf("%s refused, yet quota usage %+v -> %+v", what, usage, u)
			}
			checkContent(t, victim, files[1])
		}
		refused("pwrite past the end", func(f *os.File) error {
			_, err := f.WriteAt(make([]byte, 64<<10), fileSize)
			return err
		})
		refused("pwrite into a hole", func(f *os.File) error {
			_, err := f.WriteAt([]byte("x"), 4*fileSize)
			return err
		})
		refused("fallocate", func(f *os.File) error {
			return unix.Fallocate(int(f.Fd()), 0, fileSize, 1<<20)
		})
		refused("fallocate KEEP_SIZE", func(f *os.File) error {
			return unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_KEEP_SIZE, fileSize, 1<<20)
		})
		// What needs no new page still works on a full mount: overwriting
		// allocated bytes, and fallocate of an allocated range.
		f, err = os.OpenFile(victim, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		over := randBytes(77, 64<<10)
		if _, err := f.WriteAt(over, 4096); err != nil {
			t.Errorf("overwrite on a full mount: %v", err)
		}
		copy(files[1][4096:], over)
		if err := unix.Fallocate(int(f.Fd()), 0, 0, fileSize); err != nil {
			t.Errorf("fallocate of an allocated range on a full mount: %v", err)
		}
		// A punched hole can be filled again, and no more than that.
		if err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 0, 8192); err != nil {
			t.Fatal(err)
		}
		clear(files[1][:8192])
		if _, err := f.WriteAt(make([]byte, 3*4096), fileSize); !errors.Is(err, syscall.ENOSPC) {
			t.Errorf("appending 3 pages with 2 free: %v, want ENOSPC", err)
		}
		if err := f.Truncate(fileSize); err != nil { // whatever part of it went in
			t.Fatal(err)
		}
		refill := randBytes(78, 8192)
		if _, err := f.WriteAt(refill, 0); err != nil {
			t.Errorf("refilling a punched hole on a full mount: %v", err)
		}
		copy(files[1], refill)
		f.Close()
		checkContent(t, victim, files[1])

		// Growing with truncate allocates nothing, so a full mount allows it,
		// as tmpfs does; the new tail is a hole and reads as zeros.
		if err := os.Truncate(victim, 3*fileSize); err != nil {
			t.Errorf("truncate up on a full mount: %v", err)
		} else {
			checkContent(t, victim, append(append([]byte(nil), files[1]...), make([]byte, 2*fileSize)...))
			if err := os.Truncate(victim, fileSize); err != nil {
				t.Fatal(err)
			}
			checkContent(t, victim, files[1])
		}
		if u := m.Quota.Usage(); u.Bytes != size {
			t.Errorf("after truncating up and down, %d bytes used, want %d", u.Bytes, size)
		}

		// f0 was closed long ago: deleting it frees its pages at once.
		if err := os.Remove(m.path("f0")); err != nil {
			t.Fatal(err)
		}
		again := randBytes(9, fileSize)
		if err := os.WriteFile(m.path("again"), again, 0o644); err != nil {
			t.Errorf("write after deleting a file: %v", err)
		}
		checkContent(t, m.path("again"), again)
		checkUsageMatchesTree(t, m)
		for _, name := range listNames(t, m.Dir) {
			if err := os.Remove(m.path(name)); err != nil {
				t.Fatal(err)
			}
		}
		waitUsage(t, m, baseline)
	})
}

// TestQuotaInodes fills an inode limit with each kind of entry. As on
// tmpfs, the root directory counts as one inode: a limit of 10 leaves
// room for 9 entries.
func TestQuotaInodes(t *testing.T) {
	const limit = 10
	tiersWith(t, func(o *mountOpts) { o.inodes = limit }, func(t *testing.T, o mountOpts) {
		m := newMount(t, o)
		// Each maker creates an entry of one kind; the entry holds its inode
		// until undo.
		makers := map[string]func(p string) (undo func(), err error){
			"file": func(p string) (func(), error) {
				return func() { os.Remove(p) }, os.WriteFile(p, []byte("x"), 0o644)
			},
			"dir": func(p string) (func(), error) {
				return func() { os.Remove(p) }, os.Mkdir(p, 0o755)
			},
			"symlink": func(p string) (func(), error) {
				return func() { os.Remove(p) }, os.Symlink("target", p)
			},
			"fifo": func(p string) (func(), error) {
				return func() { os.Remove(p) }, unix.Mkfifo(p, 0o644)
			},
			"tmpfile": func(string) (func(), error) {
				fd, err := unix.Open(m.Dir, unix.O_TMPFILE|unix.O_RDWR, 0o600)
				return func() { unix.Close(fd) }, err
			},
		}
		for i := range limit - 1 {
			if err := os.WriteFile(m.path(fmt.Sprintf("e%d", i)), nil, 0o644); err != nil {
				t.Fatalf("entry %d of %d: %v", i+1, limit-1, err)
			}
		}
		if u := m.Quota.Usage(); u.Inodes != limit {
			t.Errorf("%d inodes used, want %d", u.Inodes, limit)
		}
		for kind, mk := range makers {
			undo, err := mk(m.path("extra-" + kind))
			wantErrno(t, err, syscall.ENOSPC, "creating a "+kind+" past the inode limit")
			if err == nil {
				undo()
			}
			mustNotExist(t, m.path("extra-"+kind))
		}
		// A hard link is a name, not an inode.
		if err := os.Link(m.path("e0"), m.path("link")); err != nil {
			t.Errorf("hard link on a full inode table: %v", err)
		}
		var st unix.Statfs_t
		if err := unix.Statfs(m.Dir, &st); err != nil {
			t.Fatal(err)
		}
		if st.Files != limit || st.Ffree != 0 {
			t.Errorf("statfs: files %d, ffree %d; want %d, 0", st.Files, st.Ffree, limit)
		}
		if err := os.Remove(m.path("e1")); err != nil {
			t.Fatal(err)
		}
		waitUsage(t, m, usage(0, limit-1))
		for kind, mk := range makers {
			undo, err := mk(m.path("new-" + kind))
			if err != nil {
				t.Errorf("creating a %s after a delete: %v", kind, err)
				continue
			}
			undoOver, err := makers["file"](m.path("over"))
			wantErrno(t, err, syscall.ENOSPC, "a file once the freed inode is taken again by a "+kind)
			if err == nil {
				undoOver()
			}
			undo()
			waitUsage(t, m, usage(0, limit-1))
		}
		for _, name := range listNames(t, m.Dir) {
			if err := os.Remove(m.path(name)); err != nil {
				t.Fatal(err)
			}
		}
		waitUsage(t, m, baseline)
	})
}

// usage is a quota.Usage of bytes and inodes.
func usage(bytes, inodes int64) quota.Usage { return quota.Usage{Bytes: bytes, Inodes: inodes} }

// TestStatfs checks that statfs, what df shows, reports the mount's size
// and inode limit and free figures that follow what is written and
// deleted.
func TestStatfs(t *testing.T) {
	const size, inodes = 64 << 20, 100
	tiersWith(t, func(o *mountOpts) { o.size, o.inodes = size, inodes }, func(t *testing.T, o mountOpts) {
		m := newMount(t, o)
		statfs := func() unix.Statfs_t {
			t.Helper()
			var st unix.Statfs_t
			if err := unix.Statfs(m.Dir, &st); err != nil {
				t.Fatal(err)
			}
			return st
		}
		st := statfs()
		if st.Blocks*uint64(st.Bsize) != size {
			t.Errorf("blocks %d * bsize %d = %d, want %d", st.Blocks, st.Bsize, st.Blocks*uint64(st.Bsize), size)
		}
		if st.Files != inodes {
			t.Errorf("files %d, want %d", st.Files, inodes)
		}
		check := func(when string, usedBytes, usedInodes uint64) {
			t.Helper()
			st := statfs()
			free := (size - usedBytes) / uint64(st.Bsize)
			if st.Bfree != free || st.Bavail != free {
				t.Errorf("%s: bfree %d, bavail %d, want %d", when, st.Bfree, st.Bavail, free)
			}
			if st.Ffree != inodes-usedInodes {
				t.Errorf("%s: ffree %d, want %d", when, st.Ffree, inodes-usedInodes)
			}
			if st.Blocks*uint64(st.Bsize) != size || st.Files != inodes {
				t.Errorf("%s: totals changed: blocks %d, files %d", when, st.Blocks, st.Files)
			}
		}
		check("empty", 0, 1)
		writeFile(t, m.path("a"), randBytes(1, 5<<20))
		check("after writing 5 MiB", 5<<20, 2)
		writeFile(t, m.path("b"), randBytes(2, 1))
		check("after writing 1 more byte", 5<<20+4096, 3)
		if err := os.Mkdir(m.path("d"), 0o755); err != nil {
			t.Fatal(err)
		}
		check("after mkdir", 5<<20+4096, 4)
		if err := os.Remove(m.path("a")); err != nil {
			t.Fatal(err)
		}
		waitUsage(t, m, usage(4096, 3))
		check("after deleting 5 MiB", 4096, 3)
		if err := os.Remove(m.path("b")); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(m.path("d")); err != nil {
			t.Fatal(err)
		}
		waitUsage(t, m, baseline)
		check("after deleting everything", 0, 1)
		if _, err := os.Stat(m.path("a")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("deleted file: %v", err)
		}
	})
}

// TestQuotaConcurrent has writers race for the last bytes of a mount: the
// mount never goes over its size, what each wrote reads back, and the
// quota matches what the files hold.
func TestQuotaConcurrent(t *testing.T) {
	const size, writers, chunk = 16 << 20, 4, 64 << 10
	tiersWith(t, func(o *mountOpts) { o.size = size }, func(t *testing.T, o mountOpts) {
		m := newMount(t, o)
		var wg sync.WaitGroup
		written := make([][]byte, writers)
		errs := make([]error, writers)
		for w := range writers {
			wg.Go(func() {
				f, err := os.Create(m.path(fmt.Sprintf("w%d", w)))
				if err != nil {
					errs[w] = err
					return
				}
				defer f.Close()
				s := newStream(uint64(w))
				for {
					b := make([]byte, chunk)
					s.fill(b)
					n, err := f.Write(b)
					written[w] = append(written[w], b[:n]...)
					if err != nil {
						errs[w] = err
						return
					}
				}
			})
		}
		wg.Wait()
		total := 0
		for w, err := range errs {
			wantErrno(t, err, syscall.ENOSPC, fmt.Sprintf("writer %d", w))
			checkContent(t, m.path(fmt.Sprintf("w%d", w)), written[w])
			total += len(written[w])
		}
		if u := m.Quota.Usage(); u.Bytes > size || u.Bytes < size-writers*chunk || int64(total) != u.Bytes {
			t.Errorf("mount of %d bytes: %d used, %d written", size, u.Bytes, total)
		}
		checkUsageMatchesTree(t, m)
		for w := range writers {
			if err := os.Remove(m.path(fmt.Sprintf("w%d", w))); err != nil {
				t.Fatal(err)
			}
		}
		waitUsage(t, m, baseline)
	})
}
