package test

import (
	"cmp"
	"crypto/sha256"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spoolfs/spoolfs/fs/mounts"
)

// TestCLIMountUmount is the user's path: mount returns once the mount
// answers, files work, 'spoolfs umount' deletes everything and the daemon
// exits.
func TestCLIMountUmount(t *testing.T) {
	m := mountBinary(t, "--ram", "64MiB", "--spill-threshold", "1MiB", "--size", "1GiB")
	small := []byte("hello, spoolfs\n")
	writeFile(t, filepath.Join(m.Dir, "small"), small)
	sh(t, m.Dir, "dd if=/dev/urandom of=big bs=1M count=8 status=none")
	if got := readFile(t, filepath.Join(m.Dir, "small")); string(got) != string(small) {
		t.Fatalf("read back %q", got)
	}
	out := sh(t, m.Dir, "df -B1 --output=size .")
	if !strings.Contains(out, "1073741824") {
		t.Errorf("df size is not 1GiB:\n%s", out)
	}
	if code, _, stderr := runSpoolfs(t, "umount", m.Dir); code != 0 {
		t.Fatalf("umount: exit %d: %s", code, stderr)
	}
	m.waitGone(t)
}

// TestCLIForegroundExitsZero covers every route out of a foreground daemon:
// umount(8), fusermount3 -u, SIGINT and SIGTERM, with a file held open.
func TestCLIForegroundExitsZero(t *testing.T) {
	requireFUSE(t)
	routes := map[string]func(t *testing.T, dir string, p *os.Process){
		"umount":     func(t *testing.T, dir string, _ *os.Process) { sh(t, "/", "umount "+dir) },
		"fusermount": func(t *testing.T, dir string, _ *os.Process) { sh(t, "/", "fusermount3 -u "+dir) },
		"SIGINT":     func(t *testing.T, _ string, p *os.Process) { p.Signal(os.Interrupt) },
		"SIGTERM":    func(t *testing.T, _ string, p *os.Process) { p.Signal(syscall.SIGTERM) },
	}
	for name, stop := range routes {
		t.Run(name, func(t *testing.T) {
			dir, spillDir := t.TempDir(), t.TempDir()
			d := startDaemon(t, dir, os.Stderr, "mount", "-f", "--spill-threshold", "0", "--spill-dir", spillDir, dir)
			writeFile(t, filepath.Join(dir, "f"), make([]byte, 1<<20))
			if name == "SIGINT" || name == "SIGTERM" {
				// A busy mount must not keep a signalled daemon alive.
				f, err := os.Open(filepath.Join(dir, "f"))
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
			}
			stop(t, dir, d.cmd.Process)
			d.waitCleanExit(t)
			checkNothingLeft(t, dir, spillDir)
		})
	}
}

// TestCLIBadInput: every bad value is one line naming the flag, exit 2, and
// nothing mounted.
func TestCLIBadInput(t *testing.T) {
	requireFUSE(t)
	dir := t.TempDir()
	file := filepath.Join(t.TempDir(), "file")
	writeFile(t, file, nil)
	cases := map[string][]string{
		"negative size":         {"--size", "-1G", dir},
		"unknown unit":          {"--size", "12parsecs", dir},
		"bad percentage":        {"--size", "150%", dir},
		"threshold above ram":   {"--ram", "64MiB", "--spill-threshold", "128MiB", dir},
		"missing mountpoint":    {"--size", "1G"},
		"mountpoint is a file":  {file},
		"no such mountpoint":    {filepath.Join(dir, "nope")},
		"spill dir unwritable":  {"--spill-dir", "/proc", dir},
		"spill dir inside":      {"--spill-dir", dir, dir},
		"unknown flag":          {"--sise", "1G", dir},
		"unknown -o option":     {"-o", "size=1G,bogus=1", dir},
		"-o without value":      {"-o", "size", dir},
		"-o bad value":          {"-o", "ram=lots", dir},
		"bad mode":              {"--mode", "999", dir},
		"read-only":             {"-o", "ro", dir},
		"bad inodes":            {"--inodes", "many", dir},
		"two mountpoints":       {dir, dir},
		"bad uid":               {"--uid", "-5", dir},
		"percent ram too large": {"--ram", "101%", dir},
	}
	for name, args := range cases {
		t.Run(name, func(t *testing.T) {
			code, _, stderr := runSpoolfs(t, append([]string{"mount"}, args...)...)
			if code != 2 {
				t.Errorf("exit %d, want 2; stderr: %s", code, stderr)
			}
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			if len(lines) != 1 || !strings.HasPrefix(lines[0], "spoolfs mount:") && !strings.Contains(lines[0], "flag") {
				t.Errorf("want one line of error, got:\n%s", stderr)
			}
			if strings.Contains(stderr, "panic") || strings.Contains(stderr, "goroutine") {
				t.Errorf("panic: %s", stderr)
			}
			if mounts.IsMounted(dir) {
				mounts.Unmount(dir)
				t.Fatal("a bad invocation mounted something")
			}
		})
	}
}

// TestCLINoAccidentalUnlimited: NaN, infinities, a fraction of a byte, an
// inode or a nanosecond, values that overflow, and percentages that come to
// nothing are refused: one line naming the flag, exit 2, nothing mounted.
// Each of these once mounted with no limit (a size of 0), no RAM, or no
// session lifetime, because it was read as 0.
func TestCLINoAccidentalUnlimited(t *testing.T) {
	requireFUSE(t)
	dir, spillDir := t.TempDir(), t.TempDir()
	cases := []struct {
		flag string // what the error must name
		args []string
	}{
		{"--size", []string{"--size", "NaN%"}},
		{"--size", []string{"--size", "0.5"}},
		{"--size", []string{"--size", "+Inf%"}},
		{"--size", []string{"--size", "1e400"}},
		{"--size", []string{"--size", "0.0000000000000000000001%"}},
		{"--inodes", []string{"--inodes", "0.5"}},
		{"--ram", []string{"--ram", "NaN%"}},
		{"--ram", []string{"--ram", "0.5"}},
		{"--spill-threshold", []string{"--spill-threshold", "NaN%"}},
		{"--spill-threshold", []string{"--ram", "0", "--spill-threshold", "50%"}},
		{"--session-size", []string{"--session-size", "NaN%"}},
		{"--session-size", []string{"--size", "0", "--session-size", "50%"}},
		{"--session-inodes", []string{"--session-inodes", "0.5"}},
		{"--session-ttl", []string{"--session-ttl", "0.1ns"}},
		{"--session-idle", []string{"--session-idle", "NaNs"}},
		{"--lifetime", []string{"--lifetime", "-0s"}},
		{"--lifetime", []string{"--lifetime", "9999999999h"}},
		{"-o size", []string{"-o", "size=NaN%"}},
		{"-o ram", []string{"-o", "ram=0.5"}},
		{"-o session_ttl", []string{"-o", "size=1G,session_ttl=0.5ns"}},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			args := append(append([]string{"mount", "--spill-dir", spillDir}, c.args...), dir)
			wantRefused(t, dir, c.flag, args...)
		})
	}
	// The form mount(8) runs through mount.fuse3.
	wantRefused(t, dir, "-o size", "spoolfs", dir, "-o", "size=NaN%,spill_dir="+spillDir)
}

// wantRefused runs spoolfs with args and fails unless it exits 2 with one
// line of error that names flag, and leaves dir unmounted.
func wantRefused(t *testing.T, dir, flag string, args ...string) {
	t.Helper()
	code, _, stderr := runSpoolfs(t, args...)
	if mounts.IsMounted(dir) {
		mounts.Unmount(dir)
		t.Errorf("%q mounted %s", args, dir)
	}
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if code != 2 || len(lines) != 1 || !strings.Contains(lines[0], flag) {
		t.Errorf("%q: exit %d, stderr %q; want exit 2 and one line naming %s", args, code, stderr, flag)
	}
}

// TestCLIUnsafeSpillDir: a spill directory in which another user could
// swap the daemon's private directory for a symlink (writable by others and
// not sticky, or owned by another user), or one that is really inside the
// mount point, whatever path leads there, is refused before anything is
// mounted or made in it: one line that says why, exit 2.
func TestCLIUnsafeSpillDir(t *testing.T) {
	requireFUSE(t)
	spoolfsBinary(t) // built before TMPDIR changes below
	dir := t.TempDir()
	mkdir := func(mode os.FileMode, uid int) string {
		d := filepath.Join(t.TempDir(), "spill")
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, mode); err != nil { // past the umask
			t.Fatal(err)
		}
		if err := os.Chown(d, uid, uid); err != nil {
			t.Fatal(err)
		}
		return d
	}
	symlink := func(target string) string {
		link := filepath.Join(t.TempDir(), "link")
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
		return link
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	open := mkdir(0o777, 0)
	bare := t.TempDir() // a mount point with nothing in it
	cases := map[string]struct {
		spillDir, tmpdir string // the flag, or TMPDIR when the flag is ""
		mountpoint       string
		says             string
	}{
		"writable by all, not sticky":   {spillDir: open, mountpoint: dir, says: "not sticky"},
		"writable by group, not sticky": {spillDir: mkdir(0o770, 0), mountpoint: dir, says: "not sticky"},
		"owned by another user":         {spillDir: mkdir(0o755, 1000), mountpoint: dir, says: "owned by uid 1000"},
		"sticky, of another user":       {spillDir: mkdir(0o777|os.ModeSticky, 1000), mountpoint: dir, says: "owned by uid 1000"},
		"TMPDIR writable by all":        {tmpdir: open, mountpoint: dir, says: "not sticky"},
		"symlink to the mount point":    {spillDir: symlink(bare), mountpoint: bare, says: "inside the mount point"},
		"symlink into the mount point":  {spillDir: symlink(filepath.Join(dir, "sub")), mountpoint: dir, says: "inside the mount point"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			args := []string{"mount", c.mountpoint}
			if c.spillDir != "" {
				args = []string{"mount", "--spill-dir", c.spillDir, c.mountpoint}
			} else {
				t.Setenv("TMPDIR", c.tmpdir)
			}
			code, _, stderr := runSpoolfs(t, args...)
			if mounts.IsMounted(c.mountpoint) {
				mounts.Unmount(c.mountpoint)
				t.Fatal("mounted with an unsafe spill directory")
			}
			if code != 2 {
				t.Errorf("exit %d, want 2; stderr: %s", code, stderr)
			}
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			if len(lines) != 1 || !strings.HasPrefix(lines[0], "spoolfs mount: ") || !strings.Contains(lines[0], c.says) {
				t.Errorf("want one line saying %q, got:\n%s", c.says, stderr)
			}
			spill := cmp.Or(c.spillDir, c.tmpdir)
			if entries, _ := os.ReadDir(spill); len(entries) != 0 {
				t.Errorf("refused, yet %s holds %s", spill, entries[0].Name())
			}
		})
	}
}

// TestCLISafeSpillDir: the spill directories that are safe stay accepted:
// /tmp as TMPDIR (sticky, root's), and a symlink to a directory of ours
// outside the mount, which the daemon uses by its real path. The daemon
// makes its private directory there and removes it on unmount.
func TestCLISafeSpillDir(t *testing.T) {
	requireFUSE(t)
	ours := t.TempDir()
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(ours, link); err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct{ spillDir, tmpdir, real string }{
		"TMPDIR=/tmp":                      {tmpdir: "/tmp", real: "/tmp"},
		"a symlink to a directory of ours": {spillDir: link, real: ours},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			args := []string{"mount", "-f", dir}
			if c.spillDir != "" {
				args = []string{"mount", "-f", "--spill-dir", c.spillDir, dir}
			} else {
				t.Setenv("TMPDIR", c.tmpdir)
			}
			d := startDaemon(t, dir, os.Stderr, args...)
			if want := "spill to " + c.real + ")"; !strings.Contains(d.ready, want) {
				t.Errorf("READY message %q lacks %q", d.ready, want)
			}
			private := filepath.Join(c.real, "spoolfs-"+strconv.Itoa(d.cmd.Process.Pid)+"-*")
			if found, _ := filepath.Glob(private); len(found) != 1 {
				t.Errorf("private directories %s: %q, want one", private, found)
			}
			if code, _, stderr := runSpoolfs(t, "umount", dir); code != 0 {
				t.Fatalf("umount: exit %d: %s", code, stderr)
			}
			d.waitCleanExit(t)
			if found, _ := filepath.Glob(private); len(found) != 0 {
				t.Errorf("left after unmount: %q", found)
			}
		})
	}
}

// TestCLIKilledDaemon: after SIGKILL the mount point is dead, no byte of
// file data is left on disk, and both 'spoolfs mount' and 'spoolfs umount'
// clear the dead mount.
func TestCLIKilledDaemon(t *testing.T) {
	for _, then := range []string{"mount", "umount"} {
		t.Run(then, func(t *testing.T) {
			m := mountBinary(t, "--spill-threshold", "64KiB", "--ram", "1MiB")
			sh(t, m.Dir, "dd if=/dev/urandom of=spilled bs=64k count=64 status=none; echo small > small")
			if err := syscall.Kill(m.PID, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			m.waitGone(t)
			var st syscall.Stat_t
			if err := syscall.Stat(m.Dir, &st); !mounts.IsDeadMountError(err) {
				t.Fatalf("stat of the dead mount: %v, want ENOTCONN or ECONNABORTED (or ECANCELED over io_uring)", err)
			}
			// The spill file had no name: only the empty private
			// directory can remain, and os.Remove takes only empty ones.
			assertNoFiles(t, m.SpillDir)
			if then == "umount" {
				removeEmptyDirs(t, m.SpillDir)
			}
			switch then {
			case "mount":
				again := []string{"mount", "--spill-dir", m.SpillDir, m.Dir}
				if code, _, stderr := runSpoolfs(t, again...); code != 0 {
					t.Fatalf("mount over a dead mount: exit %d: %s", code, stderr)
				}
				m.PID = daemonPID(m.Dir)
				writeFile(t, filepath.Join(m.Dir, "new"), []byte("x"))
				if _, err := os.Stat(filepath.Join(m.Dir, "small")); !os.IsNotExist(err) {
					t.Errorf("old file visible in the new mount: %v", err)
				}
			case "umount":
				if code, _, stderr := runSpoolfs(t, "umount", m.Dir); code != 0 {
					t.Fatalf("umount of a dead mount: exit %d: %s", code, stderr)
				}
				if mounts.IsMounted(m.Dir) {
					t.Fatal("still mounted")
				}
			}
		})
	}
}

// removeEmptyDirs removes the directories directly below dir, failing if
// one is not empty.
func removeEmptyDirs(t *testing.T, dir string) {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
			t.Errorf("removing %s: %v", e.Name(), err)
		}
	}
}

// assertNoFiles fails if anything but directories is found below dir.
func assertNoFiles(t *testing.T, dir string) {
	t.Helper()
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			t.Errorf("file left on disk: %s (%d bytes)", p, info.Size())
		}
		return nil
	})
}

// TestCLIMemoryTracksRAM: the daemon's peak RSS stays under its RAM budget
// plus a fixed overhead, whether data streams to disk (one big file) or
// many small files compete for RAM and get spilled least-recently-used
// first.
func TestCLIMemoryTracksRAM(t *testing.T) {
	const budgetMiB, overheadMiB = 64, 48
	m := mountWith(t, plainBinary.get(t), "--ram", "64MiB", "--spill-threshold", "4MiB")
	sh(t, m.Dir, "dd if=/dev/zero of=big bs=1M count=1024 status=none")
	h := sha256.New()
	for i := range 96 {
		name := filepath.Join(m.Dir, "small-"+strconv.Itoa(i))
		data := make([]byte, 3<<20)
		for j := range data {
			data[j] = byte(i + j)
		}
		h.Write(data)
		writeFile(t, name, data)
	}
	hwm := statusKiB(t, m.PID, "VmHWM") >> 10
	t.Logf("peak RSS %d MiB with a %d MiB budget after 1 GiB streamed and 288 MiB of small files", hwm, budgetMiB)
	if hwm > budgetMiB+overheadMiB {
		t.Errorf("peak RSS %d MiB > budget %d MiB + overhead %d MiB", hwm, budgetMiB, overheadMiB)
	}
	// Everything still reads back.
	h2 := sha256.New()
	for i := range 96 {
		f, err := os.Open(filepath.Join(m.Dir, "small-"+strconv.Itoa(i)))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(h2, f)
		f.Close()
	}
	if string(h.Sum(nil)) != string(h2.Sum(nil)) {
		t.Error("small files changed after being spilled")
	}

	// RSS tracks what is held, not what was once held: after the files
	// are deleted, the daemon gives the memory back.
	if err := os.RemoveAll(m.Dir + "/"); err != nil {
		entries, _ := os.ReadDir(m.Dir)
		if len(entries) > 0 {
			t.Fatal(err)
		}
	}
	const idleMiB = 40
	var rss int64
	defer func() { t.Logf("RSS %d MiB after the files were deleted", rss) }()
	waitFor(t, 15*time.Second, "RSS back near the idle baseline", func() bool {
		rss = statusKiB(t, m.PID, "VmRSS") >> 10
		return rss <= idleMiB
	})
}

// TestCLISignalRightAfterMount: a SIGTERM that comes the moment 'spoolfs
// mount' has returned (or systemd heard READY=1) still goes through the
// shutdown path: no dead mount, nothing left. The daemon once caught
// signals only after announcing itself ready.
func TestCLISignalRightAfterMount(t *testing.T) {
	for i := range 5 {
		m := mountBinary(t, "--spill-threshold", "0")
		if err := syscall.Kill(m.PID, syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		m.waitGone(t)
		if mounts.IsMounted(m.Dir) {
			t.Fatalf("round %d: the mount outlived its daemon", i)
		}
		checkNothingLeft(t, m.Dir, m.SpillDir)
	}
}
