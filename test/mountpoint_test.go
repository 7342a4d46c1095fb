package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/spoolfs/spoolfs/fs/mounts"
)

// mountsOn counts the mounts stacked on dir, by /proc/self/mountinfo.
func mountsOn(t testing.TB, dir string) int {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == dir {
			n++
		}
	}
	return n
}

// unmountAll takes every mount off dir, stacked ones too, and waits for
// the daemons serving dir to exit, so that a failed test leaves nothing.
func unmountAll(t testing.TB, dir string) {
	t.Helper()
	for i := 0; i < 16 && mounts.IsMounted(dir); i++ {
		if err := mounts.Unmount(dir); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
			break
		}
	}
	waitFor(t, 30*time.Second, "the daemons of "+dir+" to exit", func() bool {
		pid := daemonPID(dir)
		return pid == 0 || isZombie(pid)
	})
}

// wantOneLineRefusal checks the answer of a mount that must be refused:
// exit status 2 and one line on stderr that says why.
func wantOneLineRefusal(t testing.TB, code int, stderr, want string) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if code != 2 || len(lines) != 1 || !strings.Contains(lines[0], want) {
		t.Errorf("exit %d with stderr %q; want exit 2 and one line with %q", code, stderr, want)
	}
}

// TestCLIRemountAfterCrash: kill -9 and 'spoolfs mount' again, five times
// over, leave exactly one mount on the mount point, and 'spoolfs umount'
// then leaves a plain directory. The kernel answers stat(2) of a dead
// mount's root from its attribute cache, so a liveness check by stat once
// stacked every new mount on the dead ones.
func TestCLIRemountAfterCrash(t *testing.T) {
	m := mountBinary(t, "--spill-threshold", "64KiB", "--ram", "1MiB")
	for round := range 5 {
		writeFile(t, filepath.Join(m.Dir, "old"), []byte("from the killed daemon"))
		if _, err := os.Stat(m.Dir); err != nil { // the root's attributes are now in the kernel's cache
			t.Fatal(err)
		}
		if err := syscall.Kill(m.PID, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		m.waitGone(t)
		code, _, stderr := runSpoolfs(t, "mount", "--spill-dir", m.SpillDir, m.Dir)
		if code != 0 {
			t.Fatalf("round %d: mount over the dead mount: exit %d: %s", round, code, stderr)
		}
		if n := mountsOn(t, m.Dir); n != 1 {
			t.Fatalf("round %d: %d mounts on %s, want 1", round, n, m.Dir)
		}
		if m.PID = daemonPID(m.Dir); m.PID == 0 {
			t.Fatalf("round %d: no daemon", round)
		}
		if _, err := os.Stat(filepath.Join(m.Dir, "old")); !os.IsNotExist(err) {
			t.Fatalf("round %d: a file of the killed daemon is visible: %v", round, err)
		}
	}
	if code, _, stderr := runSpoolfs(t, "umount", m.Dir); code != 0 {
		t.Fatalf("umount: exit %d: %s", code, stderr)
	}
	m.waitGone(t)
	if n := mountsOn(t, m.Dir); n != 0 {
		t.Fatalf("%d mounts left on %s after umount", n, m.Dir)
	}
	if entries, err := os.ReadDir(m.Dir); err != nil || len(entries) != 0 {
		t.Fatalf("after umount %s is not an empty plain directory: %v %v", m.Dir, entries, err)
	}
}

// TestCLIMountOnLiveMount: 'spoolfs mount' on a live spoolfs refuses in one
// line with exit status 2, whether named directly or through a symlink, and
// the first mount goes on serving, open files included. It once stacked an
// empty spoolfs on top, hiding every file from a build running inside.
func TestCLIMountOnLiveMount(t *testing.T) {
	m := mountBinary(t)
	kept := randBytes(1, 100<<10)
	writeFile(t, filepath.Join(m.Dir, "kept"), kept)
	if err := os.Mkdir(filepath.Join(m.Dir, "build"), 0o755); err != nil {
		t.Fatal(err)
	}
	open, err := os.Create(filepath.Join(m.Dir, "build", "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(m.Dir, link); err != nil {
		t.Fatal(err)
	}
	for _, arg := range []string{m.Dir, m.Dir + "/", link} {
		code, _, stderr := runSpoolfs(t, "mount", "--spill-dir", t.TempDir(), arg)
		wantOneLineRefusal(t, code, stderr, "already mounted")
		if n := mountsOn(t, m.Dir); n != 1 {
			unmountAll(t, m.Dir) // the harness then reports the first mount gone
			t.Fatalf("mount %s: %d mounts on %s, want 1", arg, n, m.Dir)
		}
		checkContent(t, filepath.Join(m.Dir, "kept"), kept)
		if _, err := open.Write([]byte("still building\n")); err != nil {
			t.Fatalf("writing to a file held open: %v", err)
		}
	}
}

// TestCLIMountOnOtherFilesystem: a mount point that has another filesystem
// mounted on it is refused, as mount(8) would not silently stack either.
func TestCLIMountOnOtherFilesystem(t *testing.T) {
	requireFUSE(t)
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unmountAll(t, dir) })
	code, _, stderr := runSpoolfs(t, "mount", "--spill-dir", t.TempDir(), dir)
	wantOneLineRefusal(t, code, stderr, "tmpfs")
	if n := mountsOn(t, dir); n != 1 {
		t.Errorf("%d mounts on %s, want only the tmpfs", n, dir)
	}
}

// TestCLIMountRace: two 'spoolfs mount' of one directory at once make one
// mount; the other is refused.
func TestCLIMountRace(t *testing.T) {
	requireFUSE(t)
	for round := range 3 {
		dir, spillDir := t.TempDir(), t.TempDir()
		t.Cleanup(func() { checkNothingLeft(t, dir, spillDir) })
		t.Cleanup(func() { unmountAll(t, dir) })
		var wg sync.WaitGroup
		codes := make([]int, 2)
		stderrs := make([]string, 2)
		for i := range codes {
			wg.Go(func() { codes[i], _, stderrs[i] = runSpoolfs(t, "mount", "--spill-dir", spillDir, dir) })
		}
		wg.Wait()
		if n := mountsOn(t, dir); n != 1 {
			t.Fatalf("round %d: %d mounts on %s, want 1 (exits %v, stderr %q)", round, n, dir, codes, stderrs)
		}
		loser := 0
		if codes[0] == 0 {
			loser = 1
		}
		if codes[1-loser] != 0 {
			t.Fatalf("round %d: no mount succeeded: exits %v, stderr %q", round, codes, stderrs)
		}
		wantOneLineRefusal(t, codes[loser], stderrs[loser], "already mounted")
	}
}

// TestMakeMountTwice: a second 'make mount' says that spoolfs is already
// mounted, leaves the first mount alone and does not fail: the target
// promises a mounted spoolfs, which there is. After a kill -9, 'make mount'
// replaces the dead mount.
func TestMakeMountTwice(t *testing.T) {
	requireFUSE(t)
	dir, spillDir := t.TempDir(), t.TempDir()
	bin := fmt.Sprintf("bin/spoolfs-maketest-%d", os.Getpid()) // relative: the Makefile runs ./$(BIN)
	t.Cleanup(func() { os.Remove(filepath.Join("..", bin)) })
	t.Cleanup(func() { checkNothingLeft(t, dir, spillDir) })
	t.Cleanup(func() { unmountAll(t, dir) })
	makeMount := func() string {
		t.Helper()
		cmd := exec.Command("make", "-s", "-C", "..", "mount", "MOUNTPOINT="+dir, "BIN="+bin)
		cmd.Env = append(os.Environ(), "TMPDIR="+spillDir)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("make mount: %v\n%s", err, out)
		}
		return string(out)
	}
	makeMount()
	writeFile(t, filepath.Join(dir, "kept"), []byte("x"))
	out := makeMount()
	if !strings.Contains(out, "already mounted") {
		t.Errorf("second make mount does not say it is already mounted:\n%s", out)
	}
	if n := mountsOn(t, dir); n != 1 {
		t.Fatalf("%d mounts on %s, want 1", n, dir)
	}
	checkContent(t, filepath.Join(dir, "kept"), []byte("x"))

	pid := daemonPID(dir)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the daemon to die", func() bool { return syscall.Kill(pid, 0) != nil || isZombie(pid) })
	if out := makeMount(); !strings.Contains(out, "spoolfs mounted at") {
		t.Errorf("make mount over a dead mount:\n%s", out)
	}
	if n := mountsOn(t, dir); n != 1 {
		t.Fatalf("%d mounts on %s after the dead one was replaced, want 1", n, dir)
	}
}
