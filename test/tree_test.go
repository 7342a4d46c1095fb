package test

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// nlinkOf returns the link count of p.
func nlinkOf(t testing.TB, p string) uint64 {
	t.Helper()
	return uint64(lstat(t, p).Nlink)
}

func wantNlink(t testing.TB, p string, want uint64) {
	t.Helper()
	if got := nlinkOf(t, p); got != want {
		t.Errorf("%s: nlink %d, want %d", p, got, want)
	}
}

func mkdirs(t testing.TB, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// rename is rename(2). os.Rename will not do: it refuses any directory
// target with EEXIST before asking the kernel.
func rename(oldpath, newpath string) error {
	if err := unix.Rename(oldpath, newpath); err != nil {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: err}
	}
	return nil
}

func renameat2(oldpath, newpath string, flags uint) error {
	return unix.Renameat2(unix.AT_FDCWD, oldpath, unix.AT_FDCWD, newpath, flags)
}

// TestRename covers rename(2) and renameat2(2) over every kind of target,
// and the link counts of the directories involved.
func TestRename(t *testing.T) {
	tiers(t, func(t *testing.T, o mountOpts) {
		m := newMount(t, o)
		// Top-level directories are sessions, which renames cannot cross:
		// the tree lives in one.
		base := m.path("work")
		mkdirs(t, base)
		w := func(elem ...string) string { return filepath.Join(append([]string{base}, elem...)...) }
		t.Run("over a file", func(t *testing.T) {
			src, dst := w("src"), w("dst")
			srcData := randBytes(1, 10<<10)
			writeFile(t, src, srcData)
			writeFile(t, dst, randBytes(2, 1<<20))
			before := m.Quota.Usage()
			if err := rename(src, dst); err != nil {
				t.Fatal(err)
			}
			mustNotExist(t, src)
			checkContent(t, dst, srcData)
			waitUsage(t, m, usage(before.Bytes-1<<20, before.Inodes-1))
			// Over a file still open: its data lives until the last close.
			old := randBytes(3, 200<<10)
			writeFile(t, src, old)
			f, err := os.Open(src)
			if err != nil {
				t.Fatal(err)
			}
			before = m.Quota.Usage()
			if err := rename(dst, src); err != nil {
				t.Fatal(err)
			}
			checkContent(t, src, srcData)
			dropCache(t, f)
			got := make([]byte, len(old))
			if _, err := f.ReadAt(got, 0); err != nil || !slices.Equal(got, old) {
				t.Errorf("replaced file, still open, lost its data (%v)", err)
			}
			if st := fstat(t, f); st.Nlink != 0 {
				t.Errorf("replaced file has nlink %d", st.Nlink)
			}
			if u := m.Quota.Usage(); u != before {
				t.Errorf("replacing an open file changed usage from %+v to %+v before its close", before, u)
			}
			f.Close()
			waitUsage(t, m, usage(before.Bytes-200<<10, before.Inodes-1))
			if err := os.Remove(src); err != nil {
				t.Fatal(err)
			}
		})
		t.Run("over an empty dir", func(t *testing.T) {
			mkdirs(t, w("a", "sub"), w("b"))
			wantNlink(t, w("a"), 3)
			if err := rename(w("a"), w("b")); err != nil {
				t.Fatal(err)
			}
			mustNotExist(t, w("a"))
			mustExist(t, w("b", "sub"))
			wantNlink(t, base, 3)
			wantNlink(t, w("b"), 3)
			// And across parents: the source's parent loses a link, the
			// target's keeps its count (one in, one out).
			mkdirs(t, w("p", "empty"), w("q", "full", "x"))
			wantNlink(t, w("p"), 3)
			if err := rename(w("q", "full"), w("p", "empty")); err != nil {
				t.Fatal(err)
			}
			wantNlink(t, w("p"), 3)
			wantNlink(t, w("q"), 2)
			mustExist(t, w("p", "empty", "x"))
			// Two directories exchanged across parents change no counts.
			mkdirs(t, w("q", "other", "y", "z"))
			if err := renameat2(w("p", "empty"), w("q", "other"), unix.RENAME_EXCHANGE); err != nil {
				t.Fatal(err)
			}
			wantNlink(t, w("p"), 3)
			wantNlink(t, w("q"), 3)
			mustExist(t, w("p", "empty", "y", "z"))
			mustExist(t, w("q", "other", "x"))
			for _, n := range []string{"b", "p", "q"} {
				removeAll(t, w(n))
			}
			wantNlink(t, base, 2)
		})
		t.Run("refused", func(t *testing.T) {
			mkdirs(t, w("d1"), w("full", "x"), w("empty"))
			writeFile(t, w("f1"), []byte("f1"))
			writeFile(t, w("f2"), []byte("f2"))
			wantErrno(t, rename(w("d1"), w("full")), syscall.ENOTEMPTY, "dir onto a non-empty dir")
			wantErrno(t, rename(w("f1"), w("empty")), syscall.EISDIR, "file over a dir")
			wantErrno(t, rename(w("d1"), w("f1")), syscall.ENOTDIR, "dir over a file")
			wantErrno(t, renameat2(w("f1"), w("f2"), unix.RENAME_NOREPLACE), syscall.EEXIST, "RENAME_NOREPLACE over a file")
			wantErrno(t, renameat2(w("d1"), w("empty"), unix.RENAME_NOREPLACE), syscall.EEXIST, "RENAME_NOREPLACE over a dir")
			wantErrno(t, renameat2(w("f1"), w("nothing"), unix.RENAME_EXCHANGE), syscall.ENOENT, "RENAME_EXCHANGE with a missing target")
			wantErrno(t, rename(w("d1"), w("d1", "inside")), syscall.EINVAL, "dir into itself")
			// Nothing moved.
			checkContent(t, w("f1"), []byte("f1"))
			checkContent(t, w("f2"), []byte("f2"))
			mustExist(t, w("full", "x"))
			if got := listNames(t, base); !slices.Equal(got, []string{"d1", "empty", "f1", "f2", "full"}) {
				t.Errorf("after refused renames the root lists %q", got)
			}
			wantNlink(t, base, 5)
			if err := renameat2(w("f1"), w("new"), unix.RENAME_NOREPLACE); err != nil {
				t.Errorf("RENAME_NOREPLACE to a free name: %v", err)
			}
			for _, n := range []string{"d1", "full", "empty", "new", "f2"} {
				removeAll(t, w(n))
			}
		})
		t.Run("exchange file and dir", func(t *testing.T) {
			mkdirs(t, w("p1"), w("p2", "d", "inner"))
			writeFile(t, w("p1", "f"), []byte("file"))
			wantNlink(t, w("p1"), 2)
			wantNlink(t, w("p2"), 3)
			if err := renameat2(w("p1", "f"), w("p2", "d"), unix.RENAME_EXCHANGE); err != nil {
				t.Fatal(err)
			}
			wantNlink(t, w("p1"), 3)
			wantNlink(t, w("p2"), 2)
			checkContent(t, w("p2", "d"), []byte("file"))
			mustExist(t, w("p1", "f", "inner"))
			if got, want := lstat(t, w("p1", "f", "..")).Ino, lstat(t, w("p1")).Ino; got != want {
				t.Errorf("moved dir's .. is inode %d, want %d", got, want)
			}
			// And back, in the same directory too.
			if err := renameat2(w("p2", "d"), w("p1", "f"), unix.RENAME_EXCHANGE); err != nil {
				t.Fatal(err)
			}
			wantNlink(t, w("p1"), 2)
			wantNlink(t, w("p2"), 3)
			writeFile(t, w("p2", "g"), []byte("g"))
			if err := renameat2(w("p2", "g"), w("p2", "d"), unix.RENAME_EXCHANGE); err != nil {
				t.Fatal(err)
			}
			wantNlink(t, w("p2"), 3)
			checkContent(t, w("p2", "d"), []byte("g"))
			mustExist(t, w("p2", "g", "inner"))
			removeAll(t, w("p1"))
			removeAll(t, w("p2"))
		})
		t.Run("dir with contents to another parent", func(t *testing.T) {
			mkdirs(t, w("from", "tree", "a", "b"), w("to"))
			data := randBytes(5, 200<<10)
			writeFile(t, w("from", "tree", "a", "b", "file"), data)
			if err := os.Symlink("a/b/file", w("from", "tree", "link")); err != nil {
				t.Fatal(err)
			}
			wantNlink(t, w("from"), 3)
			wantNlink(t, w("to"), 2)
			if err := rename(w("from", "tree"), w("to", "moved")); err != nil {
				t.Fatal(err)
			}
			wantNlink(t, w("from"), 2)
			wantNlink(t, w("to"), 3)
			wantNlink(t, w("to", "moved"), 3)
			checkContent(t, w("to", "moved", "link"), data)
			if got, want := lstat(t, w("to", "moved", "..")).Ino, lstat(t, w("to")).Ino; got != want {
				t.Errorf("moved dir's .. is inode %d, want %d", got, want)
			}
			mustNotExist(t, w("from", "tree"))
			removeAll(t, w("from"))
			removeAll(t, w("to"))
		})
		t.Run("nlink after mkdir and rmdir", func(t *testing.T) {
			wantNlink(t, base, 2)
			for i := range 5 {
				mkdirs(t, w(fmt.Sprintf("d%d", i)))
				wantNlink(t, base, uint64(3+i))
			}
			writeFile(t, w("file"), nil) // files do not count
			wantNlink(t, base, 7)
			for i := range 5 {
				if err := os.Remove(w(fmt.Sprintf("d%d", i))); err != nil {
					t.Fatal(err)
				}
				wantNlink(t, base, uint64(6-i))
			}
			if err := os.Remove(w("file")); err != nil {
				t.Fatal(err)
			}
		})
		removeAll(t, base)
		waitUsage(t, m, baseline)
	})
}

func removeAll(t testing.TB, p string) {
	t.Helper()
	if err := os.RemoveAll(p); err != nil {
		t.Fatal(err)
	}
}

// TestLinks covers hard links and symbolic links.
func TestLinks(t *testing.T) {
	tiers(t, func(t *testing.T, o mountOpts) {
		m := newMount(t, o)
		t.Run("hard", func(t *testing.T) {
			a, b, c := m.path("a"), m.path("b"), m.path("c")
			data := randBytes(1, 300<<10)
			writeFile(t, a, data)
			for _, l := range []string{b, c} {
				if err := os.Link(a, l); err != nil {
					t.Fatal(err)
				}
			}
			for _, p := range []string{a, b, c} {
				wantNlink(t, p, 3)
				if lstat(t, p).Ino != lstat(t, a).Ino {
					t.Errorf("%s: inode differs from its hard link's", p)
				}
			}
			if u := m.Quota.Usage(); u.Inodes != 2 || u.Bytes != 300<<10 {
				t.Errorf("3 names of one file: quota usage %+v", u)
			}
			// A write through one name shows through the others.
			f, err := os.OpenFile(b, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt([]byte("shared"), 1000); err != nil {
				t.Fatal(err)
			}
			f.Close()
			copy(data[1000:], "shared")
			checkContent(t, c, data)
			if err := os.Remove(a); err != nil {
				t.Fatal(err)
			}
			wantNlink(t, b, 2)
			wantNlink(t, c, 2)
			checkContent(t, b, data)
			if err := os.Remove(b); err != nil {
				t.Fatal(err)
			}
			wantNlink(t, c, 1)
			checkContent(t, c, data)
			if err := os.Remove(c); err != nil {
				t.Fatal(err)
			}
			waitUsage(t, m, baseline)
		})
		t.Run("symlink", func(t *testing.T) {
			mkdirs(t, m.path("dir"))
			writeFile(t, m.path("dir", "target"), []byte("pointed at"))
			for _, target := range []string{"dir/target", "/nonexistent/dangling", "../odd name\n"} {
				p := m.path("link")
				if err := os.Symlink(target, p); err != nil {
					t.Fatal(err)
				}
				got, err := os.Readlink(p)
				if err != nil || got != target {
					t.Errorf("readlink: %q, %v; want %q", got, err, target)
				}
				st := lstat(t, p)
				if st.Mode&unix.S_IFMT != unix.S_IFLNK || st.Size != int64(len(target)) {
					t.Errorf("lstat of a symlink to %q: mode %o, size %d", target, st.Mode, st.Size)
				}
				if err := os.Remove(p); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Symlink("dir/target", m.path("link")); err != nil {
				t.Fatal(err)
			}
			checkContent(t, m.path("link"), []byte("pointed at"))
			long := string(slices.Repeat([]byte("x/"), 2000))
			if err := os.Symlink(long, m.path("long")); err != nil {
				t.Errorf("symlink with a 4000-byte target: %v", err)
			} else if got, _ := os.Readlink(m.path("long")); got != long {
				t.Errorf("readlink of a 4000-byte target gives %d bytes", len(got))
			}
			for _, n := range []string{"link", "long", "dir"} {
				removeAll(t, m.path(n))
			}
			waitUsage(t, m, baseline)
		})
		t.Run("fifo", func(t *testing.T) {
			p := m.path("fifo")
			if err := unix.Mkfifo(p, 0o644); err != nil {
				t.Fatal(err)
			}
			if st := lstat(t, p); st.Mode&unix.S_IFMT != unix.S_IFIFO {
				t.Errorf("mkfifo made mode %o", st.Mode)
			}
			data := randBytes(2, 1<<20)
			var wg sync.WaitGroup
			var werr error
			wg.Go(func() {
				f, err := os.OpenFile(p, os.O_WRONLY, 0)
				if err != nil {
					werr = err
					return
				}
				defer f.Close()
				_, werr = f.Write(data)
			})
			f, err := os.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(f)
			f.Close()
			wg.Wait()
			if err != nil || werr != nil {
				t.Fatalf("through the fifo: read %v, write %v", err, werr)
			}
			if !slices.Equal(got, data) {
				t.Errorf("fifo passed %d bytes, differing at %d", len(got), firstDiff(got, data))
			}
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
		})
		t.Run("socket", func(t *testing.T) {
			p := m.path("sock")
			if len(p) >= 108 {
				t.Skipf("socket path %q is too long for sun_path", p)
			}
			l, err := net.Listen("unix", p)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			if st := lstat(t, p); st.Mode&unix.S_IFMT != unix.S_IFSOCK {
				t.Errorf("bound socket has mode %o", st.Mode)
			}
			done := make(chan error, 1)
			go func() {
				c, err := l.Accept()
				if err != nil {
					done <- err
					return
				}
				defer c.Close()
				line, err := bufio.NewReader(c).ReadString('\n')
				if err == nil {
					_, err = fmt.Fprintf(c, "echo %s", line)
				}
				done <- err
			}()
			c, err := net.Dial("unix", p)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			fmt.Fprintf(c, "hello\n")
			reply, err := bufio.NewReader(c).ReadString('\n')
			if err != nil || reply != "echo hello\n" {
				t.Errorf("reply %q, %v", reply, err)
			}
			if err := <-done; err != nil {
				t.Errorf("server side: %v", err)
			}
			l.Close() // unlinks the socket
			mustNotExist(t, p)
		})
		waitUsage(t, m, baseline)
	})
}

// TestReaddirStable lists a directory of 2000 entries over and over while
// other entries come and go: every listing must hold each stable entry
// exactly once.
//
// Directories hold no file data, so one tier will do.
func TestReaddirStable(t *testing.T) {
	m := newMount(t, inRAM)
	dir := m.path("dir")
	mkdirs(t, dir)
	const stable = 2000
	for i := range stable {
		if err := unix.Mknod(filepath.Join(dir, fmt.Sprintf("stable-%04d", i)), unix.S_IFREG|0o644, 0); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("made %d entries", stable)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var churnErr error
	churns := 0
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			p := filepath.Join(dir, fmt.Sprintf("churn-%d", i))
			if err := os.WriteFile(p, nil, 0o644); err != nil {
				churnErr = err
				return
			}
			if i%2 == 0 {
				if err := os.Remove(p); err != nil {
					churnErr = err
					return
				}
			} else if i > 1 {
				if err := os.Remove(filepath.Join(dir, fmt.Sprintf("churn-%d", i-2))); err != nil {
					churnErr = err
					return
				}
			}
			churns++
		}
	})
	// checkListing fails unless names holds every stable entry, and every
	// name at all, exactly once.
	checkListing := func(round int, how string, names []string) {
		t.Helper()
		seen := make(map[string]int)
		for _, n := range names {
			seen[n]++
		}
		for i := range stable {
			if n := fmt.Sprintf("stable-%04d", i); seen[n] != 1 {
				t.Errorf("round %d, %s: %s listed %d times", round, how, n, seen[n])
			}
		}
		for n, c := range seen {
			if c != 1 {
				t.Errorf("round %d, %s: %s listed %d times", round, how, n, c)
			}
		}
	}
	const rounds = 20
	for round := range rounds {
		f, err := os.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		// Small batches, so that a listing takes many READDIR calls
		// with changes landing between them.
		var names []string
		for {
			batch, err := f.Readdirnames(50)
			names = append(names, batch...)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		f.Close()
		checkListing(round, "Readdirnames(50)", names)
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		names = names[:0]
		for _, e := range entries {
			names = append(names, e.Name())
		}
		checkListing(round, "os.ReadDir", names)
		if t.Failed() {
			break
		}
	}
	close(stop)
	wg.Wait()
	if churnErr != nil {
		t.Fatalf("churn: %v", churnErr)
	}
	if churns == 0 {
		t.Errorf("no entries changed while listing")
	}
	t.Logf("%d listings with %d changes", rounds, churns)
	removeAll(t, dir)
	waitUsage(t, m, baseline)
}

// TestNames checks the limits and the freedom of names: any bytes but '/'
// and NUL, up to 255 of them (NAME_MAX, what statfs reports), and
// ENAMETOOLONG past that for every way of making a name, as on tmpfs.
func TestNames(t *testing.T) {
	m := newMount(t, inRAM)
	var st unix.Statfs_t
	if err := unix.Statfs(m.Dir, &st); err != nil {
		t.Fatal(err)
	}
	if st.Namelen != 255 {
		t.Errorf("statfs namelen %d, want 255", st.Namelen)
	}
	odd := []string{"with space", "new\nline", "ünïcödé-名前", "-leading-dash", "tab\there", "\x01\x7f\xff", "...", " "}
	for _, n := range odd {
		writeFile(t, m.path(n), []byte(n))
	}
	if got, want := listNames(t, m.Dir), slices.Sorted(slices.Values(odd)); !slices.Equal(got, want) {
		t.Errorf("readdir gives %q, want %q", got, want)
	}
	for _, n := range odd {
		checkContent(t, m.path(n), []byte(n))
		if err := os.Remove(m.path(n)); err != nil {
			t.Fatal(err)
		}
	}

	writeFile(t, m.path("src"), nil)
	for _, length := range []int{255, 256, 1000} {
		name := string(slices.Repeat([]byte("n"), length))
		p := m.path(name)
		makers := map[string]func() error{
			"create":  func() error { return os.WriteFile(p, nil, 0o644) },
			"mkdir":   func() error { return os.Mkdir(p, 0o755) },
			"symlink": func() error { return os.Symlink("src", p) },
			"mkfifo":  func() error { return unix.Mkfifo(p, 0o644) },
			"link":    func() error { return os.Link(m.path("src"), p) },
			"rename":  func() error { return rename(m.path("src"), p) },
		}
		for what, mk := range makers {
			err := mk()
			if length <= 255 {
				if err != nil {
					t.Errorf("%s with a %d-byte name: %v", what, length, err)
				}
			} else {
				wantErrno(t, err, syscall.ENAMETOOLONG, fmt.Sprintf("%s with a %d-byte name", what, length))
				continue // refused as it must be: nothing to clean up
			}
			if what == "rename" && err == nil {
				err = rename(p, m.path("src"))
			} else if err == nil {
				err = os.Remove(p)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := os.Remove(m.path("src")); err != nil {
		t.Fatal(err)
	}
	waitUsage(t, m, baseline)
}

// TestDirErrors checks the errors of directory operations.
func TestDirErrors(t *testing.T) {
	m := newMount(t, inRAM)
	base := m.path("work")
	mkdirs(t, filepath.Join(base, "full", "x"), filepath.Join(base, "empty"))
	writeFile(t, filepath.Join(base, "file"), []byte("f"))
	in := func(n ...string) string { return filepath.Join(append([]string{base}, n...)...) }
	wantErrno(t, os.Mkdir(in("empty"), 0o755), syscall.EEXIST, "mkdir of an existing dir")
	wantErrno(t, os.Mkdir(in("file"), 0o755), syscall.EEXIST, "mkdir over a file")
	wantErrno(t, unix.Rmdir(in("full")), syscall.ENOTEMPTY, "rmdir of a non-empty dir")
	wantErrno(t, unix.Rmdir(in("file")), syscall.ENOTDIR, "rmdir of a file")
	wantErrno(t, unix.Rmdir(in("empty")+"/."), syscall.EINVAL, "rmdir of .") // (Join would clean the dot away)
	wantErrno(t, unix.Unlink(in("empty")), syscall.EISDIR, "unlink of a dir")
	wantErrno(t, os.WriteFile(in("missing", "f"), nil, 0o644), syscall.ENOENT, "create in a missing dir")
	wantErrno(t, os.WriteFile(in("file", "f"), nil, 0o644), syscall.ENOTDIR, "create below a file")
	wantErrno(t, os.Symlink("x", in("file")), syscall.EEXIST, "symlink over a file")
	wantErrno(t, os.Link(in("file"), in("empty")), syscall.EEXIST, "link over a dir")
	wantErrno(t, os.Link(in("empty"), in("dirlink")), syscall.EPERM, "hard link to a dir")
	wantErrno(t, unix.Mknod(in("file"), unix.S_IFIFO|0o644, 0), syscall.EEXIST, "mknod over a file")
	_, err := os.OpenFile(in("empty"), os.O_WRONLY, 0)
	wantErrno(t, err, syscall.EISDIR, "open of a dir for writing")
	_, err = os.ReadDir(in("file"))
	wantErrno(t, err, syscall.ENOTDIR, "readdir of a file")
	// A directory removed while it is the current directory of a process
	// takes no new entries.
	if out, err := exec.Command("/bin/sh", "-c", "cd "+in("empty")+" && rmdir "+in("empty")+" && touch new").CombinedOutput(); err == nil || !strings.Contains(string(out), "No such file") {
		t.Errorf("create in a removed cwd: %v: %s", err, out)
	}
	wantNlink(t, base, 3)
	removeAll(t, base)
	waitUsage(t, m, baseline)
}

// TestRewinddir checks that rewinding a directory stream shows the
// directory as it is now, as POSIX asks of rewinddir and tmpfs does: not
// the entries of when it was opened.
func TestRewinddir(t *testing.T) {
	m := newMount(t, inRAM)
	d := m.path("dir")
	mkdirs(t, d)
	writeFile(t, filepath.Join(d, "old"), nil)
	f, err := os.Open(d)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if names, err := f.Readdirnames(-1); err != nil || !slices.Equal(names, []string{"old"}) {
		t.Fatalf("first listing: %q, %v", names, err)
	}
	writeFile(t, filepath.Join(d, "new"), nil)
	if err := os.Remove(filepath.Join(d, "old")); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if names, err := f.Readdirnames(-1); err != nil || !slices.Equal(names, []string{"new"}) {
		t.Errorf("after rewinddir: %q, %v; want [\"new\"]", names, err)
	}
	f.Close()
	removeAll(t, d)
	waitUsage(t, m, baseline)
}

// TestReaddirEntries checks what getdents returns for each kind of entry:
// "." and "..", inode numbers that match stat, and the right d_type.
func TestReaddirEntries(t *testing.T) {
	m := newMount(t, inRAM)
	d := m.path("dir")
	mkdirs(t, filepath.Join(d, "sub"))
	writeFile(t, filepath.Join(d, "file"), nil)
	if err := os.Symlink("file", filepath.Join(d, "sym")); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(d, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(d, "file"), filepath.Join(d, "hard")); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(d, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	type entry struct {
		ino uint64
		typ uint8
	}
	got := make(map[string]entry)
	buf := make([]byte, 4096)
	for {
		n, err := unix.Getdents(fd, buf)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		for b := buf[:n]; len(b) > 0; {
			reclen := int(binary.NativeEndian.Uint16(b[16:18]))
			name, _, _ := strings.Cut(string(b[19:reclen]), "\x00")
			if _, dup := got[name]; dup {
				t.Errorf("%q listed twice", name)
			}
			got[name] = entry{binary.NativeEndian.Uint64(b[0:8]), b[18]}
			b = b[reclen:]
		}
	}
	want := map[string]uint8{"sub": unix.DT_DIR, "file": unix.DT_REG, "hard": unix.DT_REG, "sym": unix.DT_LNK, "fifo": unix.DT_FIFO}
	check := func(t *testing.T, name string, typ uint8) {
		t.Helper()
		e, ok := got[name]
		if !ok {
			t.Errorf("getdents lacks %q: it lists %v", name, slices.Sorted(maps.Keys(got)))
			return
		}
		if e.typ != typ {
			t.Errorf("%q: d_type %d, want %d", name, e.typ, typ)
		}
		if ino := lstat(t, d+"/"+name).Ino; e.ino != ino {
			t.Errorf("%q: d_ino %d, st_ino %d", name, e.ino, ino)
		}
	}
	for name, typ := range want {
		check(t, name, typ)
	}
	for name := range got {
		if _, ok := want[name]; !ok && name != "." && name != ".." {
			t.Errorf("getdents lists %q, which does not exist", name)
		}
	}
	// POSIX lets a filesystem leave out "." and "..", but tmpfs (and so
	// ls -a) shows them.
	t.Run("dots", func(t *testing.T) {
		check(t, ".", unix.DT_DIR)
		check(t, "..", unix.DT_DIR)
	})
	unix.Close(fd)
	removeAll(t, d)
	waitUsage(t, m, baseline)
}
