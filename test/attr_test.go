package test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// old is a time far enough back that any "now" differs from it.
var old = time.Date(2001, 2, 3, 4, 5, 6, 789, time.UTC)

// setOld sets p's atime and mtime to old (and so its ctime to now).
func setOld(t testing.TB, p string) {
	t.Helper()
	ts := []unix.Timespec{unix.NsecToTimespec(old.UnixNano()), unix.NsecToTimespec(old.UnixNano())}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		t.Fatalf("utimensat %s: %v", p, err)
	}
}

type times struct{ atime, mtime, ctime time.Time }

func timesOf(t testing.TB, p string) times {
	t.Helper()
	st := lstat(t, p)
	return times{tsTime(st.Atim), tsTime(st.Mtim), tsTime(st.Ctim)}
}

// wantTimes checks which of p's times op changed: a changed time must lie
// within the op, an unchanged one must be as before.
func wantTimes(t testing.TB, p string, what string, mtime, ctime bool, op func()) {
	t.Helper()
	setOld(t, p)
	before := timesOf(t, p)
	t0 := time.Now()
	op()
	t1 := time.Now()
	after := timesOf(t, p)
	check := func(name string, b, a time.Time, bumped bool) {
		t.Helper()
		switch {
		case bumped && (a.Before(t0) || a.After(t1)):
			t.Errorf("%s: %s of %s is %v, want between %v and %v", what, name, filepath.Base(p), a, t0, t1)
		case !bumped && !a.Equal(b):
			t.Errorf("%s: %s of %s changed from %v to %v", what, name, filepath.Base(p), b, a)
		}
	}
	check("mtime", before.mtime, after.mtime, mtime)
	check("ctime", before.ctime, after.ctime, ctime)
	if !after.atime.Equal(old) {
		t.Errorf("%s: atime of %s changed from %v to %v", what, filepath.Base(p), old, after.atime)
	}
}

// TestTimestamps checks which operations set mtime and ctime, as tmpfs
// does.
func TestTimestamps(t *testing.T) {
	tiers(t, func(t *testing.T, o mountOpts) {
		m := newMount(t, o)
		p := m.path("file")
		writeFile(t, p, []byte("data"))
		f := openRW(t, p)
		wantTimes(t, p, "write", true, true, func() {
			if _, err := f.WriteAt([]byte("more"), 2); err != nil {
				t.Fatal(err)
			}
		})
		wantTimes(t, p, "ftruncate", true, true, func() {
			if err := f.Truncate(1); err != nil {
				t.Fatal(err)
			}
		})
		wantTimes(t, p, "fallocate", true, true, func() {
			if err := unix.Fallocate(int(f.Fd()), 0, 0, 8192); err != nil {
				t.Fatal(err)
			}
		})
		wantTimes(t, p, "chmod", false, true, func() {
			if err := os.Chmod(p, 0o600); err != nil {
				t.Fatal(err)
			}
		})
		wantTimes(t, p, "chown", false, true, func() {
			if err := os.Chown(p, 1000, 1000); err != nil {
				t.Fatal(err)
			}
		})
		wantTimes(t, p, "setxattr", false, true, func() {
			if err := unix.Setxattr(p, "user.k", []byte("v"), 0); err != nil {
				t.Fatal(err)
			}
		})
		wantTimes(t, p, "link", false, true, func() {
			if err := os.Link(p, m.path("link")); err != nil {
				t.Fatal(err)
			}
		})
		wantTimes(t, p, "rename", false, true, func() {
			if err := os.Rename(m.path("link"), m.path("link2")); err != nil {
				t.Fatal(err)
			}
		})
		wantTimes(t, p, "unlink of another name", false, true, func() {
			if err := os.Remove(m.path("link2")); err != nil {
				t.Fatal(err)
			}
		})
		wantTimes(t, p, "read", false, false, func() {
			if _, err := f.ReadAt(make([]byte, 10), 0); err != nil {
				t.Fatal(err)
			}
		})
		f.Close()

		t.Run("utimensat", func(t *testing.T) {
			at := time.Date(2010, 1, 2, 3, 4, 5, 123456789, time.UTC)
			mt := time.Date(2011, 6, 7, 8, 9, 10, 987654321, time.UTC)
			ts := []unix.Timespec{unix.NsecToTimespec(at.UnixNano()), unix.NsecToTimespec(mt.UnixNano())}
			before := time.Now()
			if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, 0); err != nil {
				t.Fatal(err)
			}
			got := timesOf(t, p)
			if !got.atime.Equal(at) || !got.mtime.Equal(mt) {
				t.Errorf("utimensat: atime %v, mtime %v; want %v, %v", got.atime, got.mtime, at, mt)
			}
			if got.ctime.Before(before) {
				t.Errorf("utimensat left ctime at %v, before the call at %v", got.ctime, before)
			}
			// UTIME_OMIT keeps one, UTIME_NOW sets the other to now.
			before = time.Now()
			ts = []unix.Timespec{{Nsec: unix.UTIME_OMIT}, {Nsec: unix.UTIME_NOW}}
			if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, 0); err != nil {
				t.Fatal(err)
			}
			after := time.Now()
			got = timesOf(t, p)
			if !got.atime.Equal(at) {
				t.Errorf("UTIME_OMIT changed atime to %v", got.atime)
			}
			if got.mtime.Before(before) || got.mtime.After(after) {
				t.Errorf("UTIME_NOW set mtime to %v, want between %v and %v", got.mtime, before, after)
			}
			// utimes(NULL) sets both to now.
			before = time.Now()
			if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, nil, 0); err != nil {
				t.Fatal(err)
			}
			after = time.Now()
			got = timesOf(t, p)
			for name, tm := range map[string]time.Time{"atime": got.atime, "mtime": got.mtime, "ctime": got.ctime} {
				if tm.Before(before) || tm.After(after) {
					t.Errorf("utimensat(NULL): %s %v, want between %v and %v", name, tm, before, after)
				}
			}
		})

		t.Run("parent", func(t *testing.T) {
			// Below the top level, where directories are sessions that
			// renames cannot leave.
			top := m.path("top")
			d := filepath.Join(top, "dir")
			mkdirs(t, d)
			in := func(name string) string { return filepath.Join(d, name) }
			for _, op := range []struct {
				what string
				fn   func() error
			}{
				{"create", func() error { return os.WriteFile(in("f"), nil, 0o644) }},
				{"mkdir", func() error { return os.Mkdir(in("sub"), 0o755) }},
				{"symlink", func() error { return os.Symlink("f", in("sym")) }},
				{"mknod", func() error { return unix.Mkfifo(in("fifo"), 0o644) }},
				{"link", func() error { return os.Link(in("f"), in("hard")) }},
				{"rename within", func() error { return os.Rename(in("hard"), in("hard2")) }},
				{"rename out", func() error { return os.Rename(in("hard2"), filepath.Join(top, "moved")) }},
				{"rename in", func() error { return os.Rename(filepath.Join(top, "moved"), in("back")) }},
				{"unlink", func() error { return os.Remove(in("back")) }},
				{"rmdir", func() error { return os.Remove(in("sub")) }},
			} {
				wantTimes(t, d, op.what+" in a dir", true, true, func() {
					if err := op.fn(); err != nil {
						t.Fatalf("%s: %v", op.what, err)
					}
				})
			}
			removeAll(t, top)
		})
		for _, name := range listNames(t, m.Dir) {
			removeAll(t, m.path(name))
		}
		waitUsage(t, m, baseline)
	})
}

// TestPermissions checks, with helper processes running as uid 1000, that
// the kernel's permission checks (default_permissions) see the owners and
// modes spoolfs reports, and that new entries get their creator's ids.
func TestPermissions(t *testing.T) {
	const uid, gid = 1000, 1000
	m := newMount(t, inRAM)
	openMountToOthers(t, m)
	as := func(script string) (string, error) { return runAs(uid, gid, m.Dir, script) }
	mustFail := func(script, why string) {
		t.Helper()
		if out, err := as(script); err == nil {
			t.Errorf("uid %d could %s (%q): %s", uid, why, script, out)
		} else if !strings.Contains(out, "Permission denied") && !strings.Contains(out, "Operation not permitted") {
			t.Errorf("%s: failed, but not for want of permission: %s", script, out)
		}
	}
	mustWork := func(script, what string) string {
		t.Helper()
		out, err := as(script)
		if err != nil {
			t.Errorf("uid %d could not %s (%q): %v: %s", uid, what, script, err, out)
		}
		return out
	}

	writeFile(t, m.path("secret"), []byte("root only"))
	if err := os.Chmod(m.path("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	writeFile(t, m.path("public"), []byte("anyone"))
	if err := os.Chmod(m.path("public"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustFail("cat secret", "read a 0600 root file")
	if out := mustWork("cat public", "read a 0644 root file"); out != "anyone" {
		t.Errorf("cat public gave %q", out)
	}
	mustFail("echo x >> public", "write a 0644 root file")
	mustFail("chmod 666 public", "chmod root's file")
	mustFail("chown 1000 public", "chown root's file")

	// Sticky bit on the 1777 root.
	mustFail("rm -f secret", "delete root's file in a sticky directory")
	mustFail("mv public stolen", "rename root's file in a sticky directory")
	mustExist(t, m.path("secret"))
	mustExist(t, m.path("public"))
	mustWork("echo mine > mine && mkdir mydir && ln -s mine mylink", "create entries")
	for _, n := range []string{"mine", "mydir", "mylink"} {
		if st := lstat(t, m.path(n)); st.Uid != uid || st.Gid != gid {
			t.Errorf("%s created by %d:%d is owned by %d:%d", n, uid, gid, st.Uid, st.Gid)
		}
	}
	mustWork("mv mine mine2 && rm mine2 && rmdir mydir && rm mylink", "rename and delete its own entries")
	mustNotExist(t, m.path("mine2"))

	// A 0755 root directory: uid 1000 may look but not touch.
	mkdirs(t, m.path("rootdir"))
	if err := os.Chmod(m.path("rootdir"), 0o755); err != nil {
		t.Fatal(err)
	}
	mustFail("touch rootdir/x", "create in a 0755 root directory")
	mustWork("ls rootdir", "list a 0755 root directory")
	if err := os.Chmod(m.path("rootdir"), 0o700); err != nil {
		t.Fatal(err)
	}
	mustFail("ls rootdir", "list a 0700 root directory")

	// Setgid directory: new entries take its group, subdirectories its bit.
	// (os.Chmod would drop the bit: Go's FileMode has its own for setgid.)
	mkdirs(t, m.path("shared"))
	if err := os.Chown(m.path("shared"), 0, 50); err != nil {
		t.Fatal(err)
	}
	if err := unix.Chmod(m.path("shared"), 0o2777); err != nil {
		t.Fatal(err)
	}
	mustWork("touch shared/f && mkdir shared/d", "create in a setgid directory")
	if st := lstat(t, m.path("shared", "f")); st.Uid != uid || st.Gid != 50 {
		t.Errorf("file in a setgid dir of group 50: owner %d:%d", st.Uid, st.Gid)
	}
	if st := lstat(t, m.path("shared", "d")); st.Gid != 50 || st.Mode&unix.S_ISGID == 0 {
		t.Errorf("dir in a setgid dir of group 50: group %d, mode %o", st.Gid, st.Mode)
	}

	// Writing clears setuid on a file written by someone else than root.
	writeFile(t, m.path("suid"), []byte("x"))
	if err := os.Chown(m.path("suid"), uid, gid); err != nil {
		t.Fatal(err)
	}
	if err := unix.Chmod(m.path("suid"), 0o4777); err != nil {
		t.Fatal(err)
	}
	mustWork("echo y >> suid", "append to its own file")
	if st := lstat(t, m.path("suid")); st.Mode&unix.S_ISUID != 0 {
		t.Errorf("setuid survived a write by uid %d: mode %o", uid, st.Mode)
	}
	// So does a truncate by them, and a chown by anyone (root included).
	if err := unix.Chmod(m.path("suid"), 0o6777); err != nil {
		t.Fatal(err)
	}
	mustWork("truncate -s 0 suid", "truncate its own file")
	if st := lstat(t, m.path("suid")); st.Mode&(unix.S_ISUID|unix.S_ISGID) != 0 {
		t.Errorf("setuid/setgid survived a truncate by uid %d: mode %o", uid, st.Mode)
	}
	if err := unix.Chmod(m.path("suid"), 0o6755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(m.path("suid"), 0, 0); err != nil {
		t.Fatal(err)
	}
	if st := lstat(t, m.path("suid")); st.Mode&(unix.S_ISUID|unix.S_ISGID) != 0 || st.Mode&0o777 != 0o755 {
		t.Errorf("after chown by root of a 6755 file: mode %o, want 755", st.Mode)
	}

	for _, name := range listNames(t, m.Dir) {
		removeAll(t, m.path(name))
	}
	waitUsage(t, m, baseline)
}
