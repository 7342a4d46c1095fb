package test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/spoolfs/spoolfs/fs/fusetest"
)

// These tests hold spoolfs to what tmpfs does where an outside POSIX
// conformance run found it different.

// TestModeRoundTrip: every mode from 0000 to 7777 is what stat shows after
// chmod, for every kind of node that has a mode of its own, and 0 is kept
// when a node is made with it. go-fuse turns a mode of 0 into 0644/0755
// unless told not to, and with default_permissions the kernel enforces
// what it is told.
func TestModeRoundTrip(t *testing.T) {
	m := newMount(t, inRAM)
	old := unix.Umask(0)
	defer unix.Umask(old)

	made := map[string]func(p string) error{
		"file": func(p string) error {
			fd, err := unix.Open(p, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY, 0)
			if err == nil {
				unix.Close(fd)
			}
			return err
		},
		"dir":  func(p string) error { return unix.Mkdir(p, 0) },
		"fifo": func(p string) error { return unix.Mknod(p, unix.S_IFIFO, 0) },
		"sock": func(p string) error { return unix.Mknod(p, unix.S_IFSOCK, 0) },
	}
	for kind, mk := range made {
		p := m.path(kind)
		if err := mk(p); err != nil {
			t.Fatalf("make %s with mode 0: %v", kind, err)
		}
		if got := lstat(t, p).Mode & 0o7777; got != 0 {
			t.Errorf("%s made with mode 0 shows %04o", kind, got)
		}
		bad := 0
		for mode := uint32(0); mode <= 0o7777; mode++ {
			if err := unix.Chmod(p, mode); err != nil {
				t.Fatalf("chmod %s %04o: %v", kind, mode, err)
			}
			if got := lstat(t, p).Mode & 0o7777; got != mode {
				if bad++; bad <= 5 {
					t.Errorf("%s: chmod %04o, stat shows %04o", kind, mode, got)
				}
			}
		}
		if bad > 5 {
			t.Errorf("%s: %d modes did not round-trip", kind, bad)
		}
		// A fresh LOOKUP, not the attributes SETATTR returned.
		unix.Chmod(p, 0)
		forgetNames(t)
		if got := lstat(t, p).Mode & 0o7777; got != 0 {
			t.Errorf("%s with mode 0 shows %04o after a fresh lookup", kind, got)
		}
	}
}

// forgetNames makes the kernel drop the names and inodes it caches, so
// that the next stat asks the daemon.
func forgetNames(t testing.TB) {
	t.Helper()
	unix.Sync()
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("2"), 0); err != nil {
		t.Fatalf("drop the kernel's name cache: %v", err)
	}
}

// TestModeZeroEnforced: a file with mode 000 cannot be read by another
// user; what tmpfs does, and what default_permissions enforces when the
// kernel is told the real mode.
func TestModeZeroEnforced(t *testing.T) {
	m := newMount(t, inRAM)
	openMountToOthers(t, m)
	p := m.path("secret")
	writeFile(t, p, []byte("secret\n"))
	if err := os.Chmod(p, 0); err != nil {
		t.Fatal(err)
	}
	out, err := runAs(65534, 65534, m.Dir, "cat secret")
	if err == nil || strings.Contains(out, "secret\n") || !strings.Contains(out, "Permission denied") {
		t.Errorf("nobody reading a mode 000 file: %q, %v; want Permission denied", out, err)
	}
	d := m.path("closed")
	if err := os.Mkdir(d, 0); err != nil {
		t.Fatal(err)
	}
	if out, err := runAs(65534, 65534, m.Dir, "ls closed"); err == nil {
		t.Errorf("nobody listing a mode 000 directory succeeded: %q", out)
	}
}

// TestNameTooLong: a name longer than NAME_MAX gives ENAMETOOLONG wherever
// it is looked up, as on tmpfs, not ENOENT.
func TestNameTooLong(t *testing.T) {
	m := newMount(t, inRAM)
	long := strings.Repeat("n", 256)
	p := m.path(long)
	mustExist(t, m.Dir)
	writeFile(t, m.path("short"), []byte("x"))
	if err := os.Mkdir(m.path("dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	ops := map[string]func() error{
		"stat":     func() error { var st unix.Stat_t; return unix.Stat(p, &st) },
		"lstat":    func() error { var st unix.Stat_t; return unix.Lstat(p, &st) },
		"chmod":    func() error { return unix.Chmod(p, 0o600) },
		"chown":    func() error { return unix.Chown(p, 1, 1) },
		"lchown":   func() error { return unix.Lchown(p, 1, 1) },
		"truncate": func() error { return unix.Truncate(p, 0) },
		"unlink":   func() error { return unix.Unlink(p) },
		"rmdir":    func() error { return unix.Rmdir(p) },
		"open":     func() error { fd, err := unix.Open(p, unix.O_RDONLY, 0); unix.Close(fd); return err },
		"link":     func() error { return unix.Link(p, m.path("other")) },
		"rename":   func() error { return unix.Rename(p, m.path("other")) },
		"middle":   func() error { var st unix.Stat_t; return unix.Stat(filepath.Join(p, "x"), &st) },
		"middle-create": func() error {
			fd, err := unix.Open(filepath.Join(p, "x"), unix.O_CREAT|unix.O_WRONLY, 0o644)
			unix.Close(fd)
			return err
		},
		"getxattr":   func() error { _, err := unix.Getxattr(p, "user.x", nil); return err },
		"readlink":   func() error { _, err := unix.Readlink(p, make([]byte, 64)); return err },
		"in-subdir":  func() error { var st unix.Stat_t; return unix.Stat(filepath.Join(m.path("dir"), long), &st) },
		"create":     func() error { return os.WriteFile(p, nil, 0o644) },
		"mkdir":      func() error { return unix.Mkdir(p, 0o755) },
		"link-dest":  func() error { return unix.Link(m.path("short"), p) },
		"rename-dst": func() error { return unix.Rename(m.path("short"), p) },
	}
	for name, op := range ops {
		if err := op(); !errors.Is(err, unix.ENAMETOOLONG) {
			t.Errorf("%s of a 256-byte name: %v, want ENAMETOOLONG", name, err)
		}
	}
	// 255 bytes is still a name.
	ok := m.path(strings.Repeat("n", 255))
	writeFile(t, ok, []byte("x"))
	checkContent(t, ok, []byte("x"))
}

// TestFsyncDirectory: fsync(2) of a directory succeeds, as on tmpfs, so
// that write, rename, fsync(dir) code works.
func TestFsyncDirectory(t *testing.T) {
	m := newMount(t, inRAM)
	if err := os.MkdirAll(m.path("s", "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{m.Dir, m.path("s"), m.path("s", "sub")} {
		f, err := os.Open(d)
		if err != nil {
			t.Fatal(err)
		}
		if err := unix.Fsync(int(f.Fd())); err != nil {
			t.Errorf("fsync of directory %s: %v", d, err)
		}
		if err := unix.Fdatasync(int(f.Fd())); err != nil {
			t.Errorf("fdatasync of directory %s: %v", d, err)
		}
		f.Close()
	}
}

// TestQuietLargeReads: at the default log level the daemon logs nothing per
// request, only that it mounted and unmounted. go-fuse tried to splice every reply and logged each 1 MiB read
// that did not fit a pipe.
func TestQuietLargeReads(t *testing.T) {
	requireFUSE(t)
	dir, spillDir := t.TempDir(), t.TempDir()
	for _, threshold := range []string{"64M", "0"} {
		var stderr fusetest.LogBuffer
		d := startDaemon(t, dir, &stderr, "mount", "-f", "--spill-threshold", threshold, "--spill-dir", spillDir, dir)
		p := filepath.Join(dir, "big")
		data := randBytes(1, 8<<20)
		writeFile(t, p, data)
		// O_DIRECT reads go to the daemon whatever the page cache holds,
		// in requests of up to max_read (1 MiB).
		f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_DIRECT, 0)
		if err != nil {
			t.Fatal(err)
		}
		buf := alignedBuffer(1 << 20)
		var got []byte
		for {
			n, err := f.Read(buf)
			got = append(got, buf[:n]...)
			if n == 0 || err != nil {
				break
			}
		}
		f.Close()
		if !bytes.Equal(got, data) {
			t.Fatalf("threshold %s: read back %d bytes that differ from the %d written", threshold, len(got), len(data))
		}
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
		stopDaemon(t, d)
		if log := withoutLifecycle(stderr.String()); log != "" {
			t.Errorf("threshold %s: the daemon logged more than its start and stop at the default level:\n%s", threshold, firstLines(log, 5))
		}
	}
}

// stopDaemon sends SIGTERM and waits for a clean exit.
func stopDaemon(t *testing.T, d *startedDaemon) {
	t.Helper()
	d.cmd.Process.Signal(syscall.SIGTERM)
	d.waitCleanExit(t)
}

// alignedBuffer returns n bytes aligned for O_DIRECT.
func alignedBuffer(n int) []byte {
	const align = 4096
	b := make([]byte, n+align)
	off := (align - int(uintptr(unsafe.Pointer(&b[0]))%align)) % align
	return b[off : off+n]
}

// withoutLifecycle is log without the lines that the default level (info)
// has for every mount: its start and its stop.
func withoutLifecycle(log string) string {
	var rest []string
	for _, line := range strings.SplitAfter(log, "\n") {
		switch {
		case line == "":
		case strings.Contains(line, " level=INFO msg=mounted "),
			strings.Contains(line, ` level=INFO msg="shutting down" `),
			strings.Contains(line, " level=INFO msg=unmounted "):
		default:
			rest = append(rest, line)
		}
	}
	return strings.Join(rest, "")
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	if len(lines) > n {
		lines = append(lines[:n], "...")
	}
	return strings.Join(lines, "\n")
}
