//go:build linux

package fs

// What a session's end frees, and what it leaves to the descriptors still
// open in it.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/spoolfs/spoolfs/fs/control"
	"github.com/spoolfs/spoolfs/fs/fusetest"
	"github.com/spoolfs/spoolfs/quota"
)

// TestSessionEndFreesEverything: data in RAM and on disk, directories,
// symlinks, and the session's own inode all go back.
func TestSessionEndFreesEverything(t *testing.T) {
	for _, spillAll := range []bool{false, true} {
		t.Run(fmt.Sprintf("spilled=%v", spillAll), func(t *testing.T) {
			m := mountSessions(t, sessOpts{spillAll: spillAll})
			keep := m.mkSession("keep")
			sessWriteN(t, filepath.Join(keep, "k"), 4096)
			keepUsage := m.root.Usage()
			keepFiles := m.pool.Stats().Files

			s := m.mkSession("big")
			var bytesIn int64
			for i := range 20 {
				d := filepath.Join(s, fmt.Sprintf("d%d/sub", i%4))
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
				sessWriteN(t, filepath.Join(d, fmt.Sprintf("f%d", i)), (i+1)*4096)
				bytesIn += int64(i+1) * 4096
			}
			if err := os.Symlink("d0", filepath.Join(s, "link")); err != nil {
				t.Fatal(err)
			}
			fileBytes := bytesIn
			bytesIn += metaUnit // the link's target, held in RAM
			if err := unix.Mkfifo(filepath.Join(s, "fifo"), 0o644); err != nil {
				t.Fatal(err)
			}
			m.waitOpens(m.mustSession("big"), 0)
			var u control.SessionUsage
			if err := json.Unmarshal([]byte(m.sessGetx(s, control.AttrUsage)), &u); err != nil {
				t.Fatal(err)
			}
			// 1 session dir + 4 dN + 4 dN/sub + 20 files + link + fifo
			if u.Bytes != bytesIn || u.Inodes != 31 || u.RAM+u.Disk != bytesIn || (u.Disk == fileBytes) != spillAll {
				t.Errorf("usage %+v, want %d bytes, 31 inodes, spilled=%v", u, bytesIn, spillAll)
			}
			m.setx(s, control.AttrEnd, "1")
			m.expire()
			m.wantGone("big")
			rec := m.endLog("big")
			if rec["bytes_freed"] != float64(bytesIn) || rec["inodes_freed"] != float64(31) {
				t.Errorf("log: %v", rec)
			}
			fusetest.WaitFor(t, 10*time.Second, "the keep session's figures", func() bool {
				return m.root.Usage() == keepUsage && m.pool.Stats().Files == keepFiles
			})
			if st := m.pool.Stats(); spillAll && st.DiskFiles != 1 {
				t.Errorf("pool: %+v, want only keep's file on disk", st)
			}
			m.wantAlive("keep")
			m.setx(keep, control.AttrEnd, "1")
			m.expire()
			m.wantGone("keep")
			m.waitBaseline()
		})
	}
}

// TestSessionEndFreesMetadata: what extended attributes and symlink
// targets hold goes back with their session, and that of a file open at the
// end once it is closed, after more was set on it through its descriptor.
// A file freed while an O_PATH descriptor still reaches it takes nothing.
func TestSessionEndFreesMetadata(t *testing.T) {
	m := mountSessions(t, sessOpts{})
	s := m.mkSession("meta")
	f, d, l := filepath.Join(s, "f"), filepath.Join(s, "d"), filepath.Join(s, "l")
	sessWriteN(t, f, 4096)
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(strings.Repeat("t", 4000), l); err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("x"), 64<<10)
	for _, p := range []string{s, f, d} {
		m.setx(p, "user.big", string(big))
	}
	if err := unix.Lsetxattr(l, "trusted.big", big, 0); err != nil {
		t.Fatal(err)
	}
	open, err := os.OpenFile(filepath.Join(s, "open"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	if err := unix.Fsetxattr(int(open.Fd()), "user.big", big, 0); err != nil {
		t.Fatal(err)
	}

	// An O_PATH descriptor keeps the kernel's inode, not the file.
	g := filepath.Join(s, "g")
	sessWriteN(t, g, 4096)
	path, err := unix.Open(g, unix.O_PATH, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(path)
	sess := m.mustSession("meta")
	m.waitOpens(sess, 1) // the writes' RELEASE comes after close(2) returns
	before := m.root.Usage()
	if err := os.Remove(g); err != nil {
		t.Fatal(err)
	}
	err = unix.Setxattr(fmt.Sprintf("/proc/self/fd/%d", path), "user.late", big, 0)
	if !errors.Is(err, syscall.ENOENT) {
		t.Errorf("setxattr on a freed file through O_PATH: %v, want ENOENT", err)
	}
	if u := m.root.Usage(); u != (quota.Usage{Bytes: before.Bytes - 4096, Inodes: before.Inodes - 1}) {
		t.Errorf("usage %+v after freeing a 4 KiB file, was %+v", u, before)
	}

	if held := m.pool.Stats().RAMBytes; held < 5*64<<10 {
		t.Fatalf("the pool holds %d bytes of RAM with five 64 KiB values set", held)
	}
	m.setx(s, control.AttrEnd, "1")
	m.expire()
	m.wantGone("meta")
	if err := unix.Fsetxattr(int(open.Fd()), "user.more", big, 0); err != nil {
		t.Errorf("setxattr on a file open past its session's end: %v", err)
	}
	if _, err := unix.Fgetxattr(int(open.Fd()), "user.big", make([]byte, len(big))); err != nil {
		t.Errorf("getxattr on a file open past its session's end: %v", err)
	}
	open.Close()
	m.wantEmptyEnded(sess)
	m.waitBaseline()
}

// TestSessionOpenFilesOutliveEnd: a file open when its session ends keeps
// working until it is closed; then it is freed.
func TestSessionOpenFilesOutliveEnd(t *testing.T) {
	for _, spillAll := range []bool{false, true} {
		t.Run(fmt.Sprintf("spilled=%v", spillAll), func(t *testing.T) {
			m := mountSessions(t, sessOpts{spillAll: spillAll})
			s := m.mkSession("s")
			f, err := os.OpenFile(filepath.Join(s, "f"), os.O_RDWR|os.O_CREATE, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			first := bytes.Repeat([]byte{1}, 65536)
			if _, err := f.Write(first); err != nil {
				t.Fatal(err)
			}
			sess := m.mustSession("s")
			m.setx(s, control.AttrEnd, "1")
			m.expire()
			m.wantGone("s")
			if rec := m.endLog("s"); rec["bytes_still_open"] != float64(65536) {
				t.Errorf("log: %v", rec)
			}
			second := bytes.Repeat([]byte{2}, 65536)
			if _, err := f.WriteAt(second, 65536); err != nil {
				t.Fatalf("write to a file open in an ended session: %v", err)
			}
			got := make([]byte, 131072)
			if _, err := f.ReadAt(got, 0); err != nil {
				t.Fatalf("read: %v", err)
			}
			if !bytes.Equal(got[:65536], first) || !bytes.Equal(got[65536:], second) {
				t.Error("file content changed")
			}
			var st unix.Stat_t
			if err := unix.Fstat(int(f.Fd()), &st); err != nil || st.Size != 131072 {
				t.Errorf("fstat: size %d, %v", st.Size, err)
			}
			if u := m.root.Usage(); u.Bytes != 131072 {
				t.Errorf("usage while open: %+v, want the file's 128 KiB", u)
			}
			f.Close()
			m.waitOpens(sess, 0)
			m.waitBaseline()
			if u := sess.acct.Usage(); u != (quota.Usage{}) {
				t.Errorf("session account holds %+v", u)
			}
		})
	}
}

// TestSessionDirFdAfterEnd: a directory descriptor kept inside an ended
// session cannot make anything new.
func TestSessionDirFdAfterEnd(t *testing.T) {
	m := mountSessions(t, sessOpts{})
	s := m.mkSession("s")
	if err := os.Mkdir(filepath.Join(s, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	sessWriteN(t, filepath.Join(s, "sub/old"), 10)
	var fds []int
	for _, d := range []string{s, filepath.Join(s, "sub")} {
		fd, err := unix.Open(d, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		if err != nil {
			t.Fatal(err)
		}
		fds = append(fds, fd)
	}
	m.setx(s, control.AttrEnd, "1")
	m.expire()
	m.wantGone("s")
	for i, fd := range fds {
		nfd, err := unix.Openat(fd, "new", unix.O_CREAT|unix.O_WRONLY, 0o644)
		if err == nil {
			unix.Close(nfd)
		}
		if !errors.Is(err, unix.ENOENT) {
			t.Errorf("dir fd %d: openat(O_CREAT): %v, want ENOENT", i, err)
		}
		if err := unix.Mkdirat(fd, "newdir", 0o755); !errors.Is(err, unix.ENOENT) {
			t.Errorf("dir fd %d: mkdirat: %v, want ENOENT", i, err)
		}
		if err := unix.Symlinkat("x", fd, "newlink"); !errors.Is(err, unix.ENOENT) {
			t.Errorf("dir fd %d: symlinkat: %v, want ENOENT", i, err)
		}
		unix.Close(fd)
	}
	m.waitBaseline()
}
