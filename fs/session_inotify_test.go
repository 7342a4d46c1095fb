//go:build linux

package fs

// What a program watching the mount with inotify sees when a session ends:
// what it would see on tmpfs after rm -rf of the session.

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/spoolfs/spoolfs/fs/control"
	"github.com/spoolfs/spoolfs/fs/fusetest"
)

// inotifyWait is how long an event may take: generous, for a loaded machine.
const inotifyWait = 30 * time.Second

// watchSession makes a session name with a directory inner holding a file,
// and watches the root, the session, inner and the file.
func watchSession(m *sessMount, name string) (w *fusetest.Watcher, sess, inner string) {
	m.t.Helper()
	sess = m.mkSession(name)
	inner = filepath.Join(sess, "inner")
	if err := os.Mkdir(inner, 0o755); err != nil {
		m.t.Fatal(err)
	}
	sessWriteN(m.t, filepath.Join(inner, "f"), 4096)
	w = fusetest.Watch(m.t)
	w.Add(m.dir)
	w.Add(sess)
	w.Add(inner)
	w.Add(filepath.Join(inner, "f"))
	return w, sess, inner
}

// wantRemoved checks that the watches saw what rm -rf of the session
// would show them.
func wantRemoved(m *sessMount, w *fusetest.Watcher, name, sess, inner string) {
	m.t.Helper()
	w.Expect(m.dir, unix.IN_DELETE|unix.IN_ISDIR, name, inotifyWait)
	w.Expect(filepath.Join(inner, "f"), unix.IN_DELETE_SELF, "", inotifyWait)
	w.Expect(inner, unix.IN_DELETE_SELF, "", inotifyWait)
	w.Expect(sess, unix.IN_DELETE_SELF, "", inotifyWait)
	w.Expect(sess, unix.IN_IGNORED, "", inotifyWait)
	m.wantGone(name)
}

// TestSessionEndInotify: a session's end, by its TTL or on request, shows
// a watcher of the root IN_DELETE of the session, and watchers of the
// session and of a directory and a file in it IN_DELETE_SELF.
func TestSessionEndInotify(t *testing.T) {
	t.Run("ttl", func(t *testing.T) {
		m := mountSessions(t, sessOpts{policy: control.SessionPolicy{TTL: time.Hour}})
		w, sess, inner := watchSession(m, "job")
		m.advance(2 * time.Hour)
		wantRemoved(m, w, "job", sess, inner)
		m.waitBaseline()
	})
	t.Run("end attribute", func(t *testing.T) {
		m := mountSessions(t, sessOpts{})
		w, sess, inner := watchSession(m, "job")
		m.setx(sess, control.AttrEnd, "1")
		m.expire()
		wantRemoved(m, w, "job", sess, inner)
		m.waitBaseline()
	})
}

// TestSessionEndInotifyBusy: a process with its working directory in the
// session and one with a file of it open hold the kernel's entries; the
// session ends all the same, the root's watcher hears of it at once, and
// the session's watcher once the last of them lets go.
func TestSessionEndInotifyBusy(t *testing.T) {
	m := mountSessions(t, sessOpts{})
	w, sess, inner := watchSession(m, "job")
	var procs []*exec.Cmd
	for _, script := range []string{
		"cd inner && echo ready && read x",               // working directory inside
		"exec 3<inner/f && cd / && echo ready && read x", // a file open inside
	} {
		cmd := exec.Command("sh", "-c", script)
		cmd.Dir = sess
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { stdin.Close(); cmd.Wait() })
		if line, _ := bufio.NewReader(stdout).ReadString('\n'); line != "ready\n" {
			t.Fatalf("%s: said %q", script, line)
		}
		procs = append(procs, cmd)
	}
	m.setx(sess, control.AttrEnd, "1")
	m.expire()
	w.Expect(m.dir, unix.IN_DELETE|unix.IN_ISDIR, "job", inotifyWait)
	m.wantGone("job")
	for _, p := range procs {
		p.Process.Kill()
		p.Wait()
	}
	w.Expect(inner, unix.IN_DELETE_SELF, "", inotifyWait)
	w.Expect(sess, unix.IN_DELETE_SELF, "", inotifyWait)
	m.waitBaseline()
}

// TestSessionEndInotifyUncached: the kernel holds no entry for the session
// (its caches were dropped); the root's watcher still hears of its end,
// and the name is free for a new session afterwards.
func TestSessionEndInotifyUncached(t *testing.T) {
	m := mountSessions(t, sessOpts{})
	sess := m.mkSession("job")
	w := fusetest.Watch(t)
	w.Add(m.dir)
	m.setx(sess, control.AttrEnd, "1") // it ends at the next expiry
	if errno := m.f.root.NotifyEntry("job"); errno != 0 {
		t.Fatalf("dropping the kernel's entry of the session: %v", errno)
	}
	m.expire()
	w.Expect(m.dir, unix.IN_DELETE|unix.IN_ISDIR, "job", inotifyWait)
	m.wantGone("job")
	m.mkSession("job")
	m.wantAlive("job")
	m.waitOpens(m.mustSession("job"), 0)
}

// TestSessionEndInotifyNameTaken: a new session took the name of one that
// ended before the reaper removed the old one from the kernel; removing
// the old one must leave the new one alone, and what is mounted on it.
func TestSessionEndInotifyNameTaken(t *testing.T) {
	m := mountSessions(t, sessOpts{})
	sess := m.mkSession("job")
	old := m.mustSession("job")
	var p pacer
	ended, ok := m.f.sessions.end(old, control.ReasonRemoved, &p)
	if !ok {
		t.Fatal("the session did not end")
	}
	// The kernel would show the old session for as long as it caches the
	// name; once it drops it, the name is free.
	if errno := m.f.root.NotifyEntry("job"); errno != 0 {
		t.Fatalf("dropping the kernel's entry of the session: %v", errno)
	}
	m.mkSession("job")
	w := fusetest.Watch(t)
	w.Add(m.dir)
	w.Add(sess)
	// Something mounted on the new session, as an administrator may.
	if err := unix.Mount("spoolfs-test", sess, "tmpfs", 0, "mode=0755"); err != nil {
		t.Fatalf("mounting on the new session: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(sess, unix.MNT_DETACH) }) // before the harness unmounts
	m.f.sessions.reaper.add([]endedSession{ended})
	m.waitReaped()
	var st unix.Statfs_t
	if err := unix.Statfs(sess, &st); err != nil || st.Type != unix.TMPFS_MAGIC {
		t.Errorf("what was mounted on the new session is gone (statfs type %#x, %v)", st.Type, err)
	}
	if err := unix.Unmount(sess, 0); err != nil {
		t.Fatalf("unmounting from the new session: %v", err)
	}
	m.wantAlive("job")
	sessWriteN(t, filepath.Join(sess, "f"), 4096)
	m.waitOpens(m.mustSession("job"), 0)
	for _, e := range w.Events(100 * time.Millisecond) {
		if e.Mask&(unix.IN_DELETE|unix.IN_DELETE_SELF) != 0 {
			t.Errorf("the new session's watchers saw %s", e)
		}
	}
}

// TestSessionEndCoveredMount: once another filesystem covers the mount
// point, the reaper's rmdir there would land in the wrong place: it must
// not try, and the kernel still hears of the end by notification.
func TestSessionEndCoveredMount(t *testing.T) {
	m := mountSessions(t, sessOpts{})
	sess := m.mkSession("job")
	w := fusetest.Watch(t)
	w.Add(sess)
	m.setx(sess, control.AttrEnd, "1") // it ends at the next expiry
	// What covers the mount has a directory of the same name.
	if err := unix.Mount("spoolfs-test", m.dir, "tmpfs", 0, "mode=0755"); err != nil {
		t.Fatalf("covering the mount: %v", err)
	}
	covered := true
	t.Cleanup(func() { // before the harness unmounts
		if covered {
			unix.Unmount(m.dir, 0)
		}
	})
	if err := os.Mkdir(m.path("job"), 0o755); err != nil {
		t.Fatal(err)
	}
	m.expire()
	w.Expect(sess, unix.IN_DELETE_SELF, "", inotifyWait)
	if _, err := os.Stat(m.path("job")); err != nil {
		t.Errorf("the covering filesystem's job: %v", err)
	}
	if err := unix.Unmount(m.dir, 0); err != nil {
		t.Fatalf("uncovering the mount: %v", err)
	}
	covered = false
	m.wantGone("job")
}

// TestSessionEndRootLinksAndTimes: as after rm -rf of a directory, the
// root's link count drops by one and its mtime and ctime move to the end.
func TestSessionEndRootLinksAndTimes(t *testing.T) {
	m := mountSessions(t, sessOpts{})
	a := m.mkSession("a")
	m.mkSession("b")
	rootStat := func() unix.Stat_t {
		var st unix.Stat_t
		if err := unix.Lstat(m.dir, &st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	if st := rootStat(); st.Nlink != 4 {
		t.Fatalf("root with two sessions has nlink %d", st.Nlink)
	}
	m.setx(a, control.AttrEnd, "1")
	m.clock.Advance(time.Minute)
	m.expire()
	m.wantGone("a")
	st := rootStat()
	if st.Nlink != 3 {
		t.Errorf("root after a session's end has nlink %d, want 3", st.Nlink)
	}
	now := m.clock.Now()
	if mt, ct := time.Unix(st.Mtim.Unix()), time.Unix(st.Ctim.Unix()); !mt.Equal(now) || !ct.Equal(now) {
		t.Errorf("root after a session's end: mtime %v, ctime %v, want %v", mt, ct, now)
	}
}

// TestSessionEndInotifyNegativeEntry: someone looked the name up between
// the end and the reaper's rmdir, when the kernel no longer had the
// session's entry, and the kernel cached that it does not exist; the
// root's watcher still hears of the end.
func TestSessionEndInotifyNegativeEntry(t *testing.T) {
	m := mountSessions(t, sessOpts{})
	m.mkSession("job")
	w := fusetest.Watch(t)
	w.Add(m.dir)
	var p pacer
	ended, ok := m.f.sessions.end(m.mustSession("job"), control.ReasonRemoved, &p)
	if !ok {
		t.Fatal("the session did not end")
	}
	if errno := m.f.root.NotifyEntry("job"); errno != 0 {
		t.Fatalf("dropping the kernel's entry of the session: %v", errno)
	}
	if _, err := os.Lstat(m.path("job")); !os.IsNotExist(err) {
		t.Fatalf("lstat of the ended session: %v", err)
	}
	m.f.sessions.reaper.add([]endedSession{ended})
	m.waitReaped()
	w.Expect(m.dir, unix.IN_DELETE|unix.IN_ISDIR, "job", inotifyWait)
	m.wantGone("job")
}

// TestSessionEndUmountNotBusy: an unmount without MNT_DETACH, as umount(8)
// and spoolfs umount make, succeeds while the reaper is removing a session
// (held here in the root's handler of its RMDIR): the filesystem being busy
// ending sessions does not make the mount busy. The removal still finishes
// and the root's watcher sees it; the kernel then lets go of the
// connection after that removal, not after the rest of the sessions.
func TestSessionEndUmountNotBusy(t *testing.T) {
	m := mountSessions(t, sessOpts{})
	var rmdirs atomic.Int32
	held, release := make(chan string, 1), make(chan struct{})
	m.f.sessions.reaper.answeringRmdir = func(name string) {
		if rmdirs.Add(1) == 1 {
			held <- name
			<-release
		}
	}
	var releaseOnce sync.Once
	letGo := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(letGo) // before the harness unmounts
	var names []string
	for _, name := range []string{"a", "b", "c"} {
		m.setx(m.mkSession(name), control.AttrEnd, "1") // each ends at the next expiry
		names = append(names, name)
	}
	w := fusetest.Watch(t)
	w.Add(m.dir)
	m.f.sessions.expireDue(m.clock.Now())
	var name string
	select {
	case name = <-held:
	case <-time.After(inotifyWait):
		t.Fatalf("the reaper did not remove any of %v with rmdir", names)
	}
	if err := unix.Unmount(m.dir, 0); err != nil {
		t.Fatalf("unmount while the reaper removes a session: %v", err)
	}
	letGo()
	w.Expect(m.dir, unix.IN_DELETE|unix.IN_ISDIR, name, inotifyWait)
	w.Expect(m.dir, unix.IN_UNMOUNT, "", inotifyWait)
	m.mnt.WaitServed(inotifyWait)
	if n := rmdirs.Load(); n != 1 {
		t.Errorf("the reaper went on removing sessions through the mount after it was unmounted: %d rmdirs", n)
	}
}
