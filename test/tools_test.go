package test

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// makeSourceTree builds, on the host's disk, a tree with what cp -a and
// tar must carry: modes (setuid included), owners, symlinks, a hard link,
// a FIFO, empty and spill-sized files, user xattrs, nested directories.
func makeSourceTree(t *testing.T) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	mkdirs(t, filepath.Join(src, "sub", "deep", "deeper"), filepath.Join(src, "emptydir"))
	files := []struct {
		path string
		size int64
		mode uint32
	}{
		{"a.txt", 100 << 10, 0o644},
		{"exec.sh", 300, 0o755},
		{"private", 5000, 0o600},
		{"empty", 0, 0o644},
		{"suid", 10, 0o4755},
		{"sub/big.bin", 3 << 20, 0o640},
		{"sub/deep/deeper/leaf", 4096, 0o444},
	}
	for i, f := range files {
		p := filepath.Join(src, f.path)
		writeFile(t, p, randBytes(uint64(50+i), f.size))
		if err := unix.Chmod(p, f.mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("a.txt", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../nowhere", filepath.Join(src, "sub", "dangling")); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(src, "a.txt"), filepath.Join(src, "sub", "hard")); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(src, "fifo"), 0o620); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(filepath.Join(src, "private"), 1000, 1000); err != nil {
		t.Fatal(err)
	}
	if err := unix.Chmod(filepath.Join(src, "sub"), 0o2750); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(src, "sub", "deep"), 0o700); err != nil {
		t.Fatal(err)
	}
	sh(t, src, `setfattr -n user.color -v blue a.txt &&
		setfattr -n user.empty exec.sh &&
		setfattr -n user.dir -v "on a directory" sub &&
		setfattr -n user.bin -v 0x00ff10 sub/big.bin`)
	return src
}

// sameTree fails unless dst holds what src holds: types, modes, owners,
// sizes, contents, symlink targets, link counts, hard links, xattrs and
// mtimes to the nanosecond.
func sameTree(t *testing.T, src, dst string) {
	t.Helper()
	var srcPaths []string
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		srcPaths = append(srcPaths, rel)
		s, c := lstat(t, p), lstat(t, filepath.Join(dst, rel))
		if s.Mode != c.Mode || s.Uid != c.Uid || s.Gid != c.Gid || s.Nlink != c.Nlink {
			t.Errorf("%s: mode %o uid %d gid %d nlink %d, want %o %d %d %d", rel, c.Mode, c.Uid, c.Gid, c.Nlink, s.Mode, s.Uid, s.Gid, s.Nlink)
		}
		if s.Mode&unix.S_IFMT == unix.S_IFREG || s.Mode&unix.S_IFMT == unix.S_IFLNK {
			if s.Size != c.Size {
				t.Errorf("%s: size %d, want %d", rel, c.Size, s.Size)
			}
		}
		if s.Mtim != c.Mtim {
			t.Errorf("%s: mtime %v, want %v", rel, tsTime(c.Mtim), tsTime(s.Mtim))
		}
		switch s.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			if !bytes.Equal(readBack(t, filepath.Join(dst, rel)), readFile(t, p)) {
				t.Errorf("%s: content differs", rel)
			}
		case unix.S_IFLNK:
			st, _ := os.Readlink(p)
			ct, _ := os.Readlink(filepath.Join(dst, rel))
			if st != ct {
				t.Errorf("%s: symlink to %q, want %q", rel, ct, st)
			}
		}
		if s.Mode&unix.S_IFMT != unix.S_IFLNK {
			if sx, cx := xattrs(t, p), xattrs(t, filepath.Join(dst, rel)); sx != cx {
				t.Errorf("%s: xattrs %q, want %q", rel, cx, sx)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var dstPaths []string
	filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
		rel, _ := filepath.Rel(dst, p)
		dstPaths = append(dstPaths, rel)
		return nil
	})
	if !slices.Equal(srcPaths, dstPaths) {
		t.Errorf("copy lists %q, want %q", dstPaths, srcPaths)
	}
	if lstat(t, filepath.Join(dst, "a.txt")).Ino != lstat(t, filepath.Join(dst, "sub", "hard")).Ino {
		t.Errorf("hard link became two files")
	}
	// And the tools' own view.
	// (diff calls any two FIFOs different.)
	if out, err := exec.Command("diff", "-r", "--no-dereference", "-x", "fifo", src, dst).CombinedOutput(); err != nil {
		t.Errorf("diff -r: %v\n%s", err, out)
	}
}

// xattrs returns p's user.* attributes as "name=value" lines, sorted.
func xattrs(t testing.TB, p string) string {
	t.Helper()
	buf := make([]byte, 64<<10)
	n, err := unix.Listxattr(p, buf)
	if err != nil {
		t.Fatalf("listxattr %s: %v", p, err)
	}
	var lines []string
	for name := range strings.SplitSeq(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
		if !strings.HasPrefix(name, "user.") {
			continue
		}
		v := make([]byte, 64<<10)
		vn, err := unix.Getxattr(p, name, v)
		if err != nil {
			t.Fatalf("getxattr %s %s: %v", p, name, err)
		}
		lines = append(lines, fmt.Sprintf("%s=%x", name, v[:vn]))
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// TestCopyTools copies a tree into the mount and back out with cp -a and
// with tar, and checks that nothing was lost on the way.
func TestCopyTools(t *testing.T) {
	// A threshold of 64 KiB puts some of the files on disk.
	m := newMount(t, mountOpts{threshold: 64 << 10, ram: 64 << 20})
	src := makeSourceTree(t)
	out := t.TempDir()
	// Top-level directories are sessions, with attributes of their own
	// (user.spoolfs.*): the copies go one level down.
	work := m.path("work")
	mkdirs(t, work)
	t.Run("cp -a", func(t *testing.T) {
		sh(t, m.Dir, fmt.Sprintf("cp -a %q %q", src, filepath.Join(work, "cp")))
		sameTree(t, src, filepath.Join(work, "cp"))
		checkUsageMatchesTree(t, m)
		sh(t, m.Dir, fmt.Sprintf("cp -a %q %q", filepath.Join(work, "cp"), filepath.Join(out, "cp")))
		sameTree(t, src, filepath.Join(out, "cp"))
		if m.FS.Pool().Stats().DiskFiles == 0 {
			t.Errorf("no file spilled: the copy did not cover the disk tier")
		}
	})
	t.Run("tar", func(t *testing.T) {
		mkdirs(t, filepath.Join(work, "tar"), filepath.Join(out, "tar"))
		const flags = "--xattrs --xattrs-include='user.*' --numeric-owner"
		sh(t, m.Dir, fmt.Sprintf("tar -C %q -cf - %s . | tar -C %q -xpf - %s", src, flags, filepath.Join(work, "tar"), flags))
		sameTree(t, src, filepath.Join(work, "tar"))
		sh(t, m.Dir, fmt.Sprintf("tar -C %q -cf - %s . | tar -C %q -xpf - %s", filepath.Join(work, "tar"), flags, filepath.Join(out, "tar"), flags))
		sameTree(t, src, filepath.Join(out, "tar"))
	})
	for _, name := range listNames(t, m.Dir) {
		sh(t, m.Dir, "rm -rf "+name)
	}
	waitUsage(t, m, baseline)
	eventually(t, "the pool to be empty", func() bool { return m.FS.Pool().Stats().Files == 0 })
}

// TestRemoveTrees removes a 200-deep tree and a 5000-entry directory with
// rm -rf: the mount must end up empty, with its quota back at the start.
func TestRemoveTrees(t *testing.T) {
	m := newMount(t, mountOpts{threshold: 8 << 10, ram: 64 << 20})
	t.Run("deep", func(t *testing.T) {
		p := m.path("deep")
		mkdirs(t, p)
		for i := range 200 {
			p = filepath.Join(p, "d")
			if err := os.Mkdir(p, 0o755); err != nil {
				t.Fatalf("depth %d: %v", i, err)
			}
			if i%20 == 0 {
				writeFile(t, filepath.Join(p, "f"), randBytes(uint64(i), 10<<10))
				if err := os.Symlink("f", filepath.Join(p, "l")); err != nil {
					t.Fatal(err)
				}
			}
		}
		sh(t, m.Dir, "rm -rf deep")
		mustNotExist(t, m.path("deep"))
	})
	t.Run("wide", func(t *testing.T) {
		mkdirs(t, m.path("wide"))
		for i := range 5000 {
			p := m.path("wide", fmt.Sprintf("file-%04d", i))
			if i%10 == 0 {
				writeFile(t, p, randBytes(uint64(i), 5000))
			} else if err := unix.Mknod(p, unix.S_IFREG|0o644, 0); err != nil {
				t.Fatal(err)
			}
		}
		if n := len(listNames(t, m.path("wide"))); n != 5000 {
			t.Fatalf("wide dir lists %d entries", n)
		}
		sh(t, m.Dir, "rm -rf wide")
		mustNotExist(t, m.path("wide"))
	})
	if names := listNames(t, m.Dir); len(names) != 0 {
		t.Errorf("after rm -rf the mount holds %q", names)
	}
	waitUsage(t, m, baseline)
	eventually(t, "the pool to be empty", func() bool {
		s := m.FS.Pool().Stats()
		return s.Files == 0 && s.RAMBytes == 0 && s.DiskBytes == 0
	})
	if st := lstat(t, m.Dir); st.Nlink != 2 {
		t.Errorf("empty root has nlink %d", st.Nlink)
	}
}

// TestXattrTools drives extended attributes with setfattr and getfattr and
// with the system calls: set, get, list, replace, remove, 64 KiB values and
// the refusals.
func TestXattrTools(t *testing.T) {
	m := newMount(t, inRAM)
	p := m.path("f")
	writeFile(t, p, []byte("x"))
	mkdirs(t, m.path("d"))

	t.Run("tools", func(t *testing.T) {
		sh(t, m.Dir, `setfattr -n user.one -v 1 f && setfattr -n user.two -v "second value" f && setfattr -n user.three -v 0x00ff f`)
		if got := sh(t, m.Dir, "getfattr --only-values -n user.two f"); got != "second value" {
			t.Errorf("getfattr user.two: %q", got)
		}
		dump := sh(t, m.Dir, "getfattr -d -m - -e hex f")
		for _, want := range []string{`user.one=0x31`, `user.two=0x7365636f6e642076616c7565`, `user.three=0x00ff`} {
			if !strings.Contains(dump, want) {
				t.Errorf("getfattr -d lacks %s:\n%s", want, dump)
			}
		}
		sh(t, m.Dir, "setfattr -n user.two -v replaced f")
		if got := sh(t, m.Dir, "getfattr --only-values -n user.two f"); got != "replaced" {
			t.Errorf("after replacing, user.two is %q", got)
		}
		sh(t, m.Dir, "setfattr -x user.two f")
		if out, err := exec.Command("getfattr", "-n", "user.two", p).CombinedOutput(); err == nil || !strings.Contains(string(out), "No such attribute") {
			t.Errorf("getfattr of a removed attribute: %v: %s", err, out)
		}
		sh(t, m.Dir, `setfattr -n user.onadir -v yes d`)
		if got := sh(t, m.Dir, "getfattr --only-values -n user.onadir d"); got != "yes" {
			t.Errorf("xattr on a directory: %q", got)
		}
		big := strings.Repeat("v", 64<<10)
		sh(t, m.Dir, "setfattr -n user.big -v "+big+" f")
		if got := sh(t, m.Dir, "getfattr --only-values -n user.big f"); got != big {
			t.Errorf("a 64 KiB value via the tools came back with %d bytes", len(got))
		}
	})

	t.Run("syscalls", func(t *testing.T) {
		q := m.path("g")
		writeFile(t, q, nil)
		big := randBytes(1, 64<<10)
		if err := unix.Setxattr(q, "user.big", big, 0); err != nil {
			t.Fatalf("64 KiB xattr: %v", err)
		}
		// Size query, then the value.
		n, err := unix.Getxattr(q, "user.big", nil)
		if err != nil || n != len(big) {
			t.Errorf("getxattr size query: %d, %v", n, err)
		}
		got := make([]byte, len(big))
		if n, err := unix.Getxattr(q, "user.big", got); err != nil || n != len(big) || !bytes.Equal(got, big) {
			t.Errorf("getxattr of 64 KiB: %d, %v, equal %v", n, err, bytes.Equal(got, big))
		}
		_, err = unix.Getxattr(q, "user.big", make([]byte, 100))
		wantErrno(t, err, syscall.ERANGE, "getxattr into a small buffer")
		wantErrno(t, unix.Setxattr(q, "user.huge", make([]byte, 64<<10+1), 0), syscall.E2BIG, "a value over 64 KiB")

		wantErrno(t, unix.Setxattr(q, "user.big", []byte("x"), unix.XATTR_CREATE), syscall.EEXIST, "XATTR_CREATE of an existing name")
		wantErrno(t, unix.Setxattr(q, "user.none", []byte("x"), unix.XATTR_REPLACE), syscall.ENODATA, "XATTR_REPLACE of a missing name")
		if err := unix.Setxattr(q, "user.a", []byte("1"), unix.XATTR_CREATE); err != nil {
			t.Errorf("XATTR_CREATE of a new name: %v", err)
		}
		if err := unix.Setxattr(q, "user.a", []byte("2"), unix.XATTR_REPLACE); err != nil {
			t.Errorf("XATTR_REPLACE of an existing name: %v", err)
		}
		if err := unix.Setxattr(q, "user.empty", nil, 0); err != nil {
			t.Errorf("empty value: %v", err)
		}

		// listxattr: size query, exact names, ERANGE.
		size, err := unix.Listxattr(q, nil)
		if err != nil {
			t.Fatal(err)
		}
		list := make([]byte, size)
		if n, err := unix.Listxattr(q, list); err != nil || n != size {
			t.Fatalf("listxattr: %d, %v", n, err)
		}
		names := strings.Split(strings.TrimRight(string(list), "\x00"), "\x00")
		slices.Sort(names)
		if want := []string{"user.a", "user.big", "user.empty"}; !slices.Equal(names, want) {
			t.Errorf("listxattr: %q, want %q", names, want)
		}
		_, err = unix.Listxattr(q, make([]byte, size-1))
		wantErrno(t, err, syscall.ERANGE, "listxattr into a small buffer")

		if err := unix.Removexattr(q, "user.big"); err != nil {
			t.Errorf("removexattr: %v", err)
		}
		_, err = unix.Getxattr(q, "user.big", nil)
		wantErrno(t, err, syscall.ENODATA, "getxattr after removexattr")
		wantErrno(t, unix.Removexattr(q, "user.big"), syscall.ENODATA, "removexattr of a missing name")
		if v, _ := unix.Getxattr(q, "user.a", make([]byte, 10)); v != 1 {
			t.Errorf("other attributes lost by removexattr")
		}

		// Namespaces tmpfs does not store, and user.* on a symlink.
		wantErrno(t, unix.Setxattr(q, "bogus.name", []byte("x"), 0), syscall.EOPNOTSUPP, "an unknown namespace")
		if err := os.Symlink("g", m.path("sym")); err != nil {
			t.Fatal(err)
		}
		wantErrno(t, unix.Lsetxattr(m.path("sym"), "user.x", []byte("x"), 0), syscall.EPERM, "user.* on a symlink")
		// trusted.* works for root, as on tmpfs.
		if err := unix.Setxattr(q, "trusted.t", []byte("root"), 0); err != nil {
			t.Errorf("trusted.* as root: %v", err)
		}
	})
	for _, name := range listNames(t, m.Dir) {
		removeAll(t, m.path(name))
	}
	waitUsage(t, m, baseline)
}

// TestCopyInside copies files within the mount the ways cp and cat do
// (copy_file_range, read/write), in both tiers.
func TestCopyInside(t *testing.T) {
	tiersWith(t, func(o *mountOpts) { o.threshold = min(o.threshold, 1<<20) }, func(t *testing.T, o mountOpts) {
		m := newMount(t, o)
		data := randBytes(1, 3<<20+123)
		writeFile(t, m.path("a"), data)
		in, err := os.Open(m.path("a"))
		if err != nil {
			t.Fatal(err)
		}
		out, err := os.Create(m.path("b"))
		if err != nil {
			t.Fatal(err)
		}
		var inOff, outOff int64
		for inOff < int64(len(data)) {
			n, err := unix.CopyFileRange(int(in.Fd()), &inOff, int(out.Fd()), &outOff, len(data), 0)
			if err != nil || n == 0 {
				t.Fatalf("copy_file_range at %d: %d, %v", inOff, n, err)
			}
		}
		in.Close()
		out.Close()
		sh(t, m.Dir, "cp a c && cat a > d && dd if=a of=e bs=64k status=none")
		for _, n := range []string{"b", "c", "d", "e"} {
			checkContent(t, m.path(n), data)
		}
		checkUsageMatchesTree(t, m)
		for _, n := range listNames(t, m.Dir) {
			if err := os.Remove(m.path(n)); err != nil {
				t.Fatal(err)
			}
		}
		waitUsage(t, m, baseline)
	})
}
