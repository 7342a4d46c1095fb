package test

// What a program watching a mount with inotify sees when a session ends,
// on a mount served by the spoolfs binary: what rm -rf of the session
// would show it on tmpfs.

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/spoolfs/spoolfs/fs/control"
	"github.com/spoolfs/spoolfs/fs/fusetest"
)

// inotifyWait is how long an event may take: generous, for a loaded
// machine; a TTL of a second is in it too.
const inotifyWait = 30 * time.Second

// inotifySession makes a session with a directory holding a file, and
// watches the mount's root, the session and the directory.
func inotifySession(t *testing.T, mount string, flags ...string) (w *fusetest.Watcher, sess, inner string) {
	t.Helper()
	sess = sessNew(t, mount, flags...)
	inner = filepath.Join(sess, "inner")
	if err := os.Mkdir(inner, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(inner, "f"), []byte("spoolfs"))
	w = fusetest.Watch(t)
	w.Add(mount)
	w.Add(sess)
	w.Add(inner)
	return w, sess, inner
}

// TestInotifySessionEnd: however a session ends, a watcher of the root
// sees IN_DELETE of it, and watchers of the session and of a directory in
// it see IN_DELETE_SELF and IN_IGNORED.
func TestInotifySessionEnd(t *testing.T) {
	sessFastExit(t)
	m := mountBinary(t)
	for _, tc := range []struct {
		name  string
		flags []string
		end   func(t *testing.T, sess string)
	}{
		{"session rm", nil, func(t *testing.T, sess string) { sessCLI(t, "session", "rm", sess) }},
		{"end attribute", nil, func(t *testing.T, sess string) {
			if err := unix.Setxattr(sess, control.AttrEnd, []byte("1"), 0); err != nil {
				t.Fatal(err)
			}
		}},
		{"ttl", []string{"--ttl", "1s"}, func(t *testing.T, sess string) {}},
		{"owner exit", nil, func(t *testing.T, sess string) {
			owner := exec.Command("sleep", "600")
			if err := owner.Start(); err != nil {
				t.Fatal(err)
			}
			if err := unix.Setxattr(sess, control.AttrPID, []byte(strconv.Itoa(owner.Process.Pid)), 0); err != nil {
				owner.Process.Kill()
				owner.Wait()
				t.Fatal(err)
			}
			owner.Process.Kill()
			owner.Wait()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, sess, inner := inotifySession(t, m.Dir, tc.flags...)
			name := filepath.Base(sess)
			tc.end(t, sess)
			w.Expect(m.Dir, unix.IN_DELETE|unix.IN_ISDIR, name, inotifyWait)
			w.Expect(inner, unix.IN_DELETE_SELF, "", inotifyWait)
			w.Expect(inner, unix.IN_IGNORED, "", inotifyWait)
			w.Expect(sess, unix.IN_DELETE_SELF, "", inotifyWait)
			w.Expect(sess, unix.IN_IGNORED, "", inotifyWait)
			if !sessGone(sess) {
				t.Errorf("%s is still there", sess)
			}
		})
	}
}

// TestInotifySessionEndBusy: processes with their working directory in the
// session and one with a file of it open do not hold the end up: session
// rm returns, the root's watcher sees IN_DELETE at once, and the
// session's watcher sees IN_DELETE_SELF once the last of them has left.
func TestInotifySessionEndBusy(t *testing.T) {
	sessFastExit(t)
	m := mountBinary(t)
	w, sess, inner := inotifySession(t, m.Dir)
	var procs []*sessScript
	for _, args := range [][]string{
		{`cd "$1" && echo ready && exec sleep 600`, sess},
		{`cd "$1" && echo ready && exec sleep 600`, inner},
		{`exec 3<"$1" && echo ready && exec sleep 600`, filepath.Join(inner, "f")},
	} {
		p := startScript(t, nil, args[0], args[1])
		if got := p.next(); got != "ready" {
			t.Fatalf("%s: said %q", args[0], got)
		}
		procs = append(procs, p)
	}
	sessCLI(t, "session", "rm", sess)
	w.Expect(m.Dir, unix.IN_DELETE|unix.IN_ISDIR, filepath.Base(sess), inotifyWait)
	if !sessGone(sess) {
		t.Errorf("%s is still there after session rm", sess)
	}
	for _, p := range procs {
		p.cmd.Process.Kill()
		<-p.done
	}
	w.Expect(inner, unix.IN_DELETE_SELF, "", inotifyWait)
	w.Expect(sess, unix.IN_DELETE_SELF, "", inotifyWait)
	if st := sessStatus(t, m.Dir); st.Mount.Used != 0 || st.Mount.Sessions != 0 {
		t.Errorf("after the end and the last close: %+v", *st.Mount)
	}
}
