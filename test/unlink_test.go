package test

import (
	"fmt"
	"os"
	"slices"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestUnlinkWhileOpen unlinks a file that is still open: its name goes at
// once, its data stays usable through the descriptor, and the last close
// frees its bytes, its inode and (if spilled) its disk file.
func TestUnlinkWhileOpen(t *testing.T) {
	tiers(t, func(t *testing.T, o mountOpts) {
		m := newMount(t, o)
		onDisk := int64(0)
		if o.threshold == 0 {
			onDisk = 1
		}
		p := m.path("doomed")
		data := randBytes(1, 100<<10)
		f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.Write(data); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
		mustNotExist(t, p)
		if names := listNames(t, m.Dir); len(names) != 0 {
			t.Errorf("directory still lists %q", names)
		}
		if st := fstat(t, f); st.Nlink != 0 || st.Size != int64(len(data)) {
			t.Errorf("unlinked open file: nlink %d, size %d; want 0, %d", st.Nlink, st.Size, len(data))
		}
		checkSpillDirUnnamed(t, m)
		dropCache(t, f)
		got := make([]byte, len(data))
		if _, err := f.ReadAt(got, 0); err != nil || !slices.Equal(got, data) {
			t.Errorf("reading the unlinked file: %v, content equal: %v", err, slices.Equal(got, data))
		}
		more := randBytes(2, 50<<10)
		if _, err := f.WriteAt(more, int64(len(data))); err != nil {
			t.Errorf("writing the unlinked file: %v", err)
		}
		dropCache(t, f)
		got = make([]byte, len(more))
		if _, err := f.ReadAt(got, int64(len(data))); err != nil || !slices.Equal(got, more) {
			t.Errorf("reading back a write to the unlinked file: %v", err)
		}
		stats := m.FS.Pool().Stats()
		if stats.Files != 1 || stats.DiskFiles != onDisk {
			t.Errorf("while open: pool stats %+v, want 1 file, %d on disk", stats, onDisk)
		}
		if u := m.Quota.Usage(); u.Inodes != 2 || u.Bytes != 152<<10 {
			t.Errorf("while open: quota usage %+v, want 2 inodes, %d bytes", u, 152<<10)
		}
		checkSpillDirUnnamed(t, m)
		f.Close()
		eventually(t, "the pool to drop the file", func() bool {
			s := m.FS.Pool().Stats()
			return s.Files == 0 && s.DiskFiles == 0 && s.RAMBytes == 0 && s.DiskBytes == 0
		})
		waitUsage(t, m, baseline)
		checkSpillDirUnnamed(t, m)
	})
}

// TestTmpfile covers open(O_TMPFILE): the file has no name and is freed at
// close, unless linkat gives it one; O_EXCL forbids that.
func TestTmpfile(t *testing.T) {
	tiers(t, func(t *testing.T, o mountOpts) {
		m := newMount(t, o)
		tmpfile := func(flags int, data []byte) int {
			t.Helper()
			fd, err := unix.Open(m.Dir, unix.O_TMPFILE|unix.O_RDWR|flags, 0o640)
			if err != nil {
				t.Fatalf("O_TMPFILE: %v", err)
			}
			if _, err := unix.Pwrite(fd, data, 0); err != nil {
				t.Fatalf("write to an O_TMPFILE file: %v", err)
			}
			return fd
		}
		link := map[string]func(fd int, name string) error{
			"AT_EMPTY_PATH": func(fd int, name string) error {
				return unix.Linkat(fd, "", unix.AT_FDCWD, name, unix.AT_EMPTY_PATH)
			},
			"proc": func(fd int, name string) error {
				return unix.Linkat(unix.AT_FDCWD, fmt.Sprintf("/proc/self/fd/%d", fd), unix.AT_FDCWD, name, unix.AT_SYMLINK_FOLLOW)
			},
		}
		for how, linkat := range link {
			t.Run(how, func(t *testing.T) {
				data := randBytes(3, 70<<10)
				fd := tmpfile(0, data)
				if names := listNames(t, m.Dir); len(names) != 0 {
					t.Errorf("an O_TMPFILE file shows up as %q", names)
				}
				name := m.path("named-" + how)
				if err := linkat(fd, name); err != nil {
					t.Fatalf("linkat: %v", err)
				}
				unix.Close(fd)
				st := lstat(t, name)
				if st.Nlink != 1 || st.Size != int64(len(data)) || st.Mode&0o7777 != 0o640 {
					t.Errorf("linked tmpfile: nlink %d, size %d, mode %o", st.Nlink, st.Size, st.Mode)
				}
				checkContent(t, name, data)
				if err := os.Remove(name); err != nil {
					t.Fatal(err)
				}
				waitUsage(t, m, baseline)
			})
		}
		t.Run("unlinked", func(t *testing.T) {
			fd := tmpfile(0, randBytes(4, 10<<10))
			if u := m.Quota.Usage(); u.Inodes != 2 || u.Bytes != 12<<10 {
				t.Errorf("open tmpfile: quota usage %+v", u)
			}
			unix.Close(fd)
			waitUsage(t, m, baseline)
			eventually(t, "the pool to drop the tmpfile", func() bool { return m.FS.Pool().Stats().Files == 0 })
		})
		t.Run("O_EXCL", func(t *testing.T) {
			fd := tmpfile(unix.O_EXCL, []byte("x"))
			err := link["AT_EMPTY_PATH"](fd, m.path("never"))
			wantErrno(t, err, syscall.ENOENT, "linkat of an O_TMPFILE|O_EXCL file")
			unix.Close(fd)
			mustNotExist(t, m.path("never"))
			waitUsage(t, m, baseline)
		})
		checkSpillDirUnnamed(t, m)
	})
}

// TestUnmountFreesFiles unmounts with files still in the tree, in RAM and
// on disk: closing the filesystem must free all of them, RAM, disk files
// and descriptors (the harness's cleanup checks the descriptors).
func TestUnmountFreesFiles(t *testing.T) {
	var m *testMount
	t.Cleanup(func() { // runs after the harness has unmounted and closed
		if s := m.FS.Pool().Stats(); s.Files != 0 || s.DiskFiles != 0 || s.RAMBytes != 0 || s.DiskBytes != 0 {
			t.Errorf("after unmount and Close the pool still holds %+v", s)
		}
	})
	m = newMount(t, mountOpts{threshold: 64 << 10, ram: 1 << 20})
	for i := range 4 {
		writeFile(t, m.path(fmt.Sprintf("small%d", i)), randBytes(uint64(i), 4096))
		writeFile(t, m.path(fmt.Sprintf("big%d", i)), randBytes(uint64(i), 1<<20))
	}
	if s := m.FS.Pool().Stats(); s.Files != 8 || s.DiskFiles != 4 {
		t.Errorf("pool stats %+v, want 8 files, 4 on disk", s)
	}
}
