//go:build linux

package fs

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/spoolfs/spoolfs/fs/control"
	"github.com/spoolfs/spoolfs/fs/mounts"
	"github.com/spoolfs/spoolfs/quota"
	"github.com/spoolfs/spoolfs/spill"
)

// sessClock is the mount's clock in these tests: time moves only when the
// test says so, and expiry runs only when the test calls expireDue.
type sessClock struct {
	mu  sync.Mutex
	now time.Time
}

func newSessClock() *sessClock {
	return &sessClock{now: time.Date(2031, 5, 6, 7, 8, 9, 0, time.UTC)}
}

func (c *sessClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *sessClock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	return c.now
}

// sessLogBuffer collects log output written from many goroutines.
type sessLogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *sessLogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *sessLogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// sessOpts configures a test mount.
type sessOpts struct {
	policy    control.SessionPolicy
	size      int64 // the mount's byte limit; 0: none
	threshold int64 // spill threshold; 0 means 64 MiB (files stay in RAM)
	spillAll  bool  // spill every byte (threshold 0)
	deadline  time.Duration
	cache     int64 // page cache budget of closed files (Config.CacheBudget)
	observer  Observer
}

// sessMount is an in-process mount with a fake clock.
type sessMount struct {
	t     testing.TB
	dir   string
	f     *FS
	pool  *spill.Pool
	root  *quota.Account
	clock *sessClock
	logs  *sessLogBuffer
	conn  uint32
}

// sessBaseline is an empty mount: the root directory's inode.
var sessBaseline = quota.Usage{Bytes: 0, Inodes: 1}

func sessRequireFUSE(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount FUSE")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skip("no /dev/fuse")
	}
}

func mountSessions(t testing.TB, o sessOpts) *sessMount {
	t.Helper()
	sessRequireFUSE(t)
	if o.deadline == 0 {
		o.deadline = 60 * time.Second
	}
	threshold := o.threshold
	if threshold == 0 && !o.spillAll {
		threshold = 64 << 20
	}
	pool, err := spill.NewPool(spill.Config{Dir: t.TempDir(), Threshold: threshold, RAMBudget: 256 << 20})
	if err != nil {
		t.Fatal(err)
	}
	root := quota.NewRoot(quota.Limits{Bytes: o.size})
	clock := newSessClock()
	logs := &sessLogBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	f, err := New(Config{Pool: pool, Quota: root, RootMode: 0o1777, Sessions: o.policy, Logger: logger, Now: clock.Now, CacheBudget: o.cache, Observer: o.observer})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// Let other users reach the mount point (t.TempDir's parent is 0700).
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	opts := f.Options()
	opts.DirectMount = true
	opts.AllowOther = true
	server, err := gofs.Mount(dir, f.Root(), opts)
	if err != nil {
		f.Close()
		t.Fatalf("mount: %v", err)
	}
	m := &sessMount{t: t, dir: dir, f: f, pool: pool, root: root, clock: clock, logs: logs}
	if m.conn, err = mounts.ConnectionID(dir); err != nil {
		t.Fatal(err)
	}
	watchdog := time.AfterFunc(o.deadline, func() {
		t.Errorf("test ran past its %v deadline: aborting the FUSE connection", o.deadline)
		mounts.Abort(m.conn)
	})
	t.Cleanup(func() {
		watchdog.Stop()
		sessUnmount(t, server, dir, m.conn)
		if err := f.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		if t.Failed() {
			t.Logf("daemon log:\n%s", logs.String())
		}
	})
	return m
}

func sessUnmount(t testing.TB, server *fuse.Server, dir string, conn uint32) {
	done := make(chan error, 1)
	go func() { done <- server.Unmount() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("unmount: %v; detaching", err)
			mounts.Unmount(dir)
		}
	case <-time.After(20 * time.Second):
		t.Errorf("unmount of %s hung: aborting", dir)
		mounts.Abort(conn)
		mounts.Unmount(dir)
	}
	server.Wait()
}

func (m *sessMount) path(elem ...string) string {
	return filepath.Join(append([]string{m.dir}, elem...)...)
}

// mkSession makes a session by mkdir at the root and returns its path.
func (m *sessMount) mkSession(name string) string {
	m.t.Helper()
	p := m.path(name)
	if err := os.Mkdir(p, 0o755); err != nil {
		m.t.Fatalf("mkdir %s: %v", p, err)
	}
	return p
}

// session returns the live session named name, or nil.
func (m *sessMount) session(name string) *session {
	ch := m.f.root.GetChild(name)
	if ch == nil {
		return nil
	}
	sd, ok := ch.Operations().(*sessionDir)
	if !ok {
		m.t.Fatalf("%s is a %T, not a session", name, ch.Operations())
	}
	if sd.s.ended.Load() {
		// A lookup that raced the end can put an ended session back
		// into go-fuse's tree; the mount treats it as gone (see child).
		return nil
	}
	return sd.s
}

func (m *sessMount) mustSession(name string) *session {
	m.t.Helper()
	s := m.session(name)
	if s == nil {
		m.t.Fatalf("no session %s", name)
	}
	return s
}

// expire runs what the expiry loop would at the clock's current time, and
// waits until the kernel has heard of every session it ended.
func (m *sessMount) expire() {
	m.f.sessions.expireDue(m.clock.Now())
	m.waitReaped()
}

// waitReaped waits until the reaper has told the kernel of every session
// that ended.
func (m *sessMount) waitReaped() {
	m.t.Helper()
	sessPoll(m.t, time.Minute, "the kernel told of every ended session", m.f.sessions.reaper.idle)
}

// advance moves the clock and runs expiry.
func (m *sessMount) advance(d time.Duration) {
	m.clock.Advance(d)
	m.expire()
}

func sessGetx(path, name string) (string, error) {
	buf := make([]byte, 64<<10)
	n, err := unix.Getxattr(path, name, buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

func (m *sessMount) sessGetx(path, name string) string {
	m.t.Helper()
	v, err := sessGetx(path, name)
	if err != nil {
		m.t.Fatalf("getxattr %s %s: %v", path, name, err)
	}
	return v
}

func (m *sessMount) setx(path, name, value string) {
	m.t.Helper()
	if err := unix.Setxattr(path, name, []byte(value), 0); err != nil {
		m.t.Fatalf("setxattr %s %s=%s: %v", path, name, value, err)
	}
}

func sessRFC(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// alive says whether the session is there, both in the tree and through
// the kernel.
func (m *sessMount) alive(name string) bool {
	m.t.Helper()
	inTree := m.session(name) != nil
	_, err := os.Lstat(m.path(name))
	switch {
	case err == nil && inTree:
		return true
	case errors.Is(err, os.ErrNotExist) && !inTree:
		return false
	}
	m.t.Fatalf("session %s: in tree %v, but lstat says %v", name, inTree, err)
	return false
}

func (m *sessMount) wantAlive(name string) {
	m.t.Helper()
	if !m.alive(name) {
		m.t.Fatalf("session %s ended early (at %v)\nlog:\n%s", name, m.clock.Now(), m.logs.String())
	}
}

func (m *sessMount) wantGone(name string) {
	m.t.Helper()
	if m.alive(name) {
		m.t.Fatalf("session %s is still there at %v", name, m.clock.Now())
	}
	for _, e := range m.readRoot() {
		if e == name {
			m.t.Fatalf("session %s still listed in the root", name)
		}
	}
}

func (m *sessMount) readRoot() []string {
	m.t.Helper()
	entries, err := os.ReadDir(m.dir)
	if err != nil {
		m.t.Fatalf("readdir root: %v", err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// sessPoll waits for cond with a deadline.
func sessPoll(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitBaseline waits until everything is freed: the quota back to an empty
// mount's, no file left in the pool.
func (m *sessMount) waitBaseline() {
	m.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		u, st := m.root.Usage(), m.pool.Stats()
		if u == sessBaseline && st.Files == 0 && st.RAMBytes == 0 && st.DiskBytes == 0 {
			return
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("not freed: usage %+v (want %+v), pool %+v", u, sessBaseline, st)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitOpens waits until the session counts n open files: release is
// asynchronous to close(2).
func (m *sessMount) waitOpens(s *session, n int64) {
	m.t.Helper()
	sessPoll(m.t, 10*time.Second, fmt.Sprintf("%d open files in the session", n), func() bool { return s.opens.Load() == n })
}

// endLog finds the last "session ended" line for name.
func (m *sessMount) endLog(name string) map[string]any {
	m.t.Helper()
	var found map[string]any
	sc := bufio.NewScanner(strings.NewReader(m.logs.String()))
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			m.t.Fatalf("log line is not JSON: %q", sc.Text())
		}
		if rec["msg"] == "session ended" && rec["session"] == name {
			found = rec
		}
	}
	if found != nil {
		return found
	}
	m.t.Fatalf("no \"session ended\" line with session=%q in the log:\n%s", name, m.logs.String())
	return nil
}

// wantEndLog checks the line ending name: at info, with the reason and the
// bytes freed.
func (m *sessMount) wantEndLog(name, reason string, bytesFreed int64) {
	m.t.Helper()
	rec := m.endLog(name)
	if rec["level"] != "INFO" {
		m.t.Errorf("end of %s logged at %v, want INFO", name, rec["level"])
	}
	if rec["reason"] != reason {
		m.t.Errorf("end of %s logged with reason %v, want %s", name, rec["reason"], reason)
	}
	got, ok := rec["bytes_freed"].(float64)
	if !ok || int64(got) != bytesFreed {
		m.t.Errorf("end of %s logged bytes_freed=%v, want %d", name, rec["bytes_freed"], bytesFreed)
	}
}

// sessWriteN writes n bytes of a pattern to p.
func sessWriteN(t testing.TB, p string, n int) {
	t.Helper()
	data := bytes.Repeat([]byte("spoolfs!"), n/8+1)[:n]
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatalf("write %s: %v", p, err)
	}
}

func TestSessionEndsAtTTL(t *testing.T) {
	m := mountSessions(t, sessOpts{policy: control.SessionPolicy{TTL: time.Hour}})
	t0 := m.clock.Now()
	s := m.mkSession("job")
	sessWriteN(t, filepath.Join(s, "data"), 25*4096)
	if err := os.MkdirAll(filepath.Join(s, "a/b"), 0o755); err != nil {
		t.Fatal(err)
	}
	sessWriteN(t, filepath.Join(s, "a/b/more"), 3*4096)
	if got := m.sessGetx(s, control.AttrReason); got != control.ReasonTTL {
		t.Errorf("reason %q, want ttl", got)
	}
	if got, want := m.sessGetx(s, control.AttrExpires), sessRFC(t0.Add(time.Hour)); got != want {
		t.Errorf("expires %q, want %q", got, want)
	}
	if got, want := m.sessGetx(s, control.AttrCreated), sessRFC(t0); got != want {
		t.Errorf("created %q, want %q", got, want)
	}
	// Activity does not move a TTL.
	m.clock.Advance(30 * time.Minute)
	sessWriteN(t, filepath.Join(s, "late"), 4096)
	m.waitOpens(m.mustSession("job"), 0)

	m.advance(30*time.Minute - time.Second)
	m.wantAlive("job")
	m.advance(2 * time.Second)
	m.wantGone("job")
	m.wantEndLog("job", control.ReasonTTL, 29*4096)
	m.waitBaseline()
	var st control.Status
	if err := json.Unmarshal([]byte(m.sessGetx(m.dir, control.AttrStatus)), &st); err != nil {
		t.Fatal(err)
	}
	if st.Sessions != 0 || st.Used != 0 || st.Files != 0 {
		t.Errorf("status after the end: %+v", st)
	}
}

// TestSessionIdle: each kind of activity pushes the idle deadline to the
// time of the activity; reading the control attributes does not.
func TestSessionIdle(t *testing.T) {
	const idle = 10 * time.Minute
	activities := map[string]struct {
		counts bool
		prep   func(m *sessMount, s string) func() // runs before the clock moves; returns the activity
	}{
		"write": {true, func(m *sessMount, s string) func() {
			f, err := os.OpenFile(filepath.Join(s, "f"), os.O_WRONLY, 0)
			if err != nil {
				m.t.Fatal(err)
			}
			return func() {
				if _, err := f.WriteAt([]byte("x"), 10); err != nil {
					m.t.Fatal(err)
				}
				f.Close()
			}
		}},
		"lookup": {true, func(m *sessMount, s string) func() {
			return func() {
				// Make the kernel forget the name, so that stat asks us.
				m.mustSession(filepath.Base(s)).dir.NotifyEntry("f")
				if _, err := os.Stat(filepath.Join(s, "f")); err != nil {
					m.t.Fatal(err)
				}
			}
		}},
		"readdir": {true, func(m *sessMount, s string) func() {
			return func() {
				if names, err := os.ReadDir(s); err != nil || len(names) != 1 {
					m.t.Fatalf("readdir: %v %v", names, err)
				}
			}
		}},
		"touch attribute": {true, func(m *sessMount, s string) func() {
			return func() { m.setx(s, control.AttrTouch, "1") }
		}},
		"control attributes": {false, func(m *sessMount, s string) func() {
			return func() {
				for _, name := range []string{control.AttrTTL, control.AttrIdle, control.AttrSize, control.AttrInodes, control.AttrPID, control.AttrUsage, control.AttrExpires, control.AttrCreated, control.AttrReason} {
					m.sessGetx(s, name)
				}
				if _, err := unix.Listxattr(s, make([]byte, 4096)); err != nil {
					m.t.Fatal(err)
				}
				var st unix.Stat_t
				if err := unix.Stat(s, &st); err != nil {
					m.t.Fatal(err)
				}
			}
		}},
	}
	for name, act := range activities {
		t.Run(name, func(t *testing.T) {
			m := mountSessions(t, sessOpts{policy: control.SessionPolicy{Idle: idle}})
			s := m.mkSession("idle")
			sessWriteN(t, filepath.Join(s, "f"), 100)
			// RELEASE comes after close(2) returns and counts as use:
			// let it land before the clock moves.
			m.waitOpens(m.mustSession("idle"), 0)
			t0 := m.clock.Now()
			do := act.prep(m, s)
			sess := m.mustSession("idle")
			if got, want := m.sessGetx(s, control.AttrExpires), sessRFC(t0.Add(idle)); got != want {
				t.Fatalf("expires %q, want %q", got, want)
			}
			if got := m.sessGetx(s, control.AttrReason); got != control.ReasonIdle {
				t.Fatalf("reason %q, want idle", got)
			}

			m.advance(6 * time.Minute)
			t1 := m.clock.Now()
			do()
			m.waitOpens(sess, 0)
			want := t0.Add(idle)
			if act.counts {
				want = t1.Add(idle)
			}
			if got := m.sessGetx(s, control.AttrExpires); got != sessRFC(want) {
				t.Fatalf("after the %s, expires %q, want %q", name, got, sessRFC(want))
			}

			m.clock.Advance(t0.Add(idle + time.Second).Sub(m.clock.Now()))
			m.expire()
			if !act.counts {
				m.wantGone("idle")
				m.wantEndLog("idle", control.ReasonIdle, 4096)
				m.waitBaseline()
				return
			}
			m.wantAlive("idle")
			m.clock.Advance(t1.Add(idle - time.Second).Sub(m.clock.Now()))
			m.expire()
			m.wantAlive("idle")
			m.advance(2 * time.Second)
			m.wantGone("idle")
			m.wantEndLog("idle", control.ReasonIdle, 4096)
			m.waitBaseline()
		})
	}
}

// TestSessionIdleWithOpenFile: a session with a file open is in use, however
// long nothing happens.
func TestSessionIdleWithOpenFile(t *testing.T) {
	m := mountSessions(t, sessOpts{policy: control.SessionPolicy{Idle: 10 * time.Minute}})
	s := m.mkSession("busy")
	f, err := os.Create(filepath.Join(s, "open"))
	if err != nil {
		t.Fatal(err)
	}
	sess := m.mustSession("busy")
	for range 6 {
		m.advance(time.Hour)
		m.wantAlive("busy")
	}
	f.Close()
	m.waitOpens(sess, 0)
	m.advance(10*time.Minute - time.Second)
	m.wantAlive("busy")
	m.advance(2 * time.Second)
	m.wantGone("busy")
	m.wantEndLog("busy", control.ReasonIdle, 0)
	m.waitBaseline()
}

// TestSessionEndAttribute: user.spoolfs.end ends the session at the next
// expiry run.
func TestSessionEndAttribute(t *testing.T) {
	m := mountSessions(t, sessOpts{})
	s := m.mkSession("rm-me")
	sessWriteN(t, filepath.Join(s, "f"), 8192)
	if got := m.sessGetx(s, control.AttrReason); got != "none" {
		t.Errorf("reason %q, want none", got)
	}
	if got := m.sessGetx(s, control.AttrExpires); got != "never" {
		t.Errorf("expires %q, want never", got)
	}
	m.setx(s, control.AttrEnd, "1")
	m.wantAlive("rm-me") // until the expiry loop runs
	if got := m.sessGetx(s, control.AttrReason); got != control.ReasonRemoved {
		t.Errorf("reason after end: %q, want %s", got, control.ReasonRemoved)
	}
	if got, want := m.sessGetx(s, control.AttrExpires), sessRFC(m.clock.Now()); got != want {
		t.Errorf("expires after end: %q, want now (%q)", got, want)
	}
	// RELEASE reaches us after close(2) returns: until it has, the file
	// is open and its bytes go at its last close, not at the end.
	m.waitOpens(m.mustSession("rm-me"), 0)
	m.expire()
	m.wantGone("rm-me")
	m.wantEndLog("rm-me", control.ReasonRemoved, 8192)
	m.waitBaseline()
}

// TestSessionOwnerExit: the session ends once its owning process exits.
func TestSessionOwnerExit(t *testing.T) {
	m := mountSessions(t, sessOpts{})
	s := m.mkSession("owned")
	sessWriteN(t, filepath.Join(s, "f"), 4096)
	m.waitOpens(m.mustSession("owned"), 0) // or the end finds f still open
	sleep := exec.Command("sleep", "600")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	defer sleep.Process.Kill()
	pid := strconv.Itoa(sleep.Process.Pid)
	m.setx(s, control.AttrPID, pid)
	if got := m.sessGetx(s, control.AttrPID); got != pid {
		t.Errorf("pid %q, want %s", got, pid)
	}
	if got := m.sessGetx(s, control.AttrReason); got != "none" {
		t.Errorf("reason while the owner lives: %q", got)
	}
	m.expire()
	m.wantAlive("owned")

	sleep.Process.Kill()
	sleep.Wait()
	sessPoll(t, 10*time.Second, "reason owner-exited", func() bool {
		v, err := sessGetx(s, control.AttrReason)
		return err == nil && v == control.ReasonOwner
	})
	m.wantAlive("owned") // until the expiry loop runs
	m.expire()
	m.wantGone("owned")
	m.wantEndLog("owned", control.ReasonOwner, 4096)
	m.waitBaseline()

	// A process that is gone cannot own a session.
	s2 := m.mkSession("late")
	if err := unix.Setxattr(s2, control.AttrPID, []byte(pid), 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("pid of a dead process: %v, want ESRCH", err)
	}
	for _, bad := range []string{"abc", "-3", "ancestor:x", "ancestor:-1"} {
		if err := unix.Setxattr(s2, control.AttrPID, []byte(bad), 0); !errors.Is(err, syscall.EINVAL) {
			t.Errorf("pid %q: %v, want EINVAL", bad, err)
		}
	}
	// Removing the owner stops the watch: the new owner's exit is not
	// the session's end once it is unset.
	other := exec.Command("sleep", "600")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	m.setx(s2, control.AttrPID, strconv.Itoa(other.Process.Pid))
	m.setx(s2, control.AttrPID, "0")
	other.Process.Kill()
	other.Wait()
	m.expire()
	if got := m.sessGetx(s2, control.AttrReason); got != "none" {
		t.Errorf("reason after the unset owner exited: %q", got)
	}
	m.wantAlive("late")
}

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
			sessPoll(t, 10*time.Second, "the keep session's figures", func() bool {
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

// TestSessionRmdirEndsAndLogs: rmdir of an empty session ends it, and the
// log names it like every other end.
func TestSessionRmdirEndsAndLogs(t *testing.T) {
	m := mountSessions(t, sessOpts{})
	s := m.mkSession("empty")
	if err := os.Remove(s); err != nil {
		t.Fatal(err)
	}
	m.wantGone("empty")
	if n := m.f.sessions.count(); n != 0 {
		t.Errorf("%d sessions left", n)
	}
	m.waitBaseline()
	m.wantEndLog("empty", control.ReasonRemoved, 0)
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

// wantEmptyEnded checks that an ended session holds nothing: no entry
// left in its (detached) tree, nothing charged to its account. Entries
// that escaped the end would never be freed.
// dirs are directories of the session taken before it ended: detached,
// they are no longer reachable from the session's own.
//
// go-fuse adds an entry to its tree only after the handler that made it
// has returned, so an entry made just before the end can land in the
// detached session after it: it is freed all the same (its bytes and inode
// came back through the session's register, checked here), it is invisible
// (an ended session lists and looks up nothing), and the tree lets go of
// it when the kernel forgets the names, which dropping the dentry cache
// forces.
func (m *sessMount) wantEmptyEnded(s *session, dirs ...*gofs.Inode) {
	m.t.Helper()
	m.waitOpens(s, 0)
	u := s.acct.Usage()
	for deadline := time.Now().Add(10 * time.Second); u != (quota.Usage{}) && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
		u = s.acct.Usage()
	}
	if u != (quota.Usage{}) {
		m.t.Fatalf("ended session still holds %+v: never to be freed", u)
	}
	left := func() []string {
		var names []string
		stack := append([]*gofs.Inode{&s.dir.Inode}, dirs...)
		for len(stack) > 0 {
			d := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			for name, ch := range d.Children() {
				if dn, ok := d.Operations().(directory); ok && dn.dir().child(name) != nil {
					m.t.Fatalf("entry %q of an ended session is still visible", name)
				}
				names = append(names, name)
				stack = append(stack, ch)
			}
		}
		return names
	}
	if len(left()) == 0 {
		return
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		os.WriteFile("/proc/sys/vm/drop_caches", []byte("2"), 0)
		if len(left()) == 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	m.t.Fatalf("ended session's tree still holds %q after the kernel forgot it", left())
}

// sessRaceIterations is how many sessions each race test ends.
const sessRaceIterations = 100

// finish waits for done with a deadline, aborting the mount if stuck.
func (m *sessMount) finish(done <-chan struct{}, what string) {
	m.t.Helper()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		mounts.Abort(m.conn)
		m.t.Fatalf("%s did not stop: deadlock? (connection aborted)", what)
	}
}

// TestSessionRaceWrite: sessions end while files in them are written
// through open descriptors and created by name.
func TestSessionRaceWrite(t *testing.T) {
	m := mountSessions(t, sessOpts{policy: control.SessionPolicy{TTL: time.Hour}})
	for i := range sessRaceIterations {
		name := fmt.Sprintf("w%d", i)
		s := m.mkSession(name)
		sess := m.mustSession(name)
		f, err := os.OpenFile(filepath.Join(s, "open"), os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		stop := make(chan struct{})
		started := make(chan struct{}, 2)
		done1, done2 := make(chan struct{}), make(chan struct{})
		var openErr, nameErr atomic.Value
		go func() {
			defer close(done1)
			signalled := false
			defer func() {
				if !signalled {
					started <- struct{}{}
				}
			}()
			buf := bytes.Repeat([]byte{byte(i)}, 4096)
			for j := 0; ; j++ {
				if _, err := f.WriteAt(buf, int64(j%64)*4096); err != nil {
					openErr.Store(err)
					return
				}
				if j == 0 {
					started <- struct{}{}
					signalled = true
				}
				select {
				case <-stop:
					return
				default:
				}
			}
		}()
		go func() {
			defer close(done2)
			signalled := false
			defer func() {
				if !signalled {
					started <- struct{}{}
				}
			}()
			for j := 0; ; j++ {
				p := filepath.Join(s, fmt.Sprintf("n%d", j%8))
				err := os.WriteFile(p, []byte("x"), 0o644)
				if err != nil {
					if !errors.Is(err, os.ErrNotExist) {
						nameErr.Store(err)
					}
					return
				}
				if j == 0 {
					started <- struct{}{}
					signalled = true
				}
			}
		}()
		<-started
		<-started
		if err := openErr.Load(); err != nil {
			t.Fatalf("write to an open file: %v", err)
		}
		if err := nameErr.Load(); err != nil {
			t.Fatalf("create in a session: %v", err)
		}
		m.advance(time.Hour + time.Second)
		if m.alive(name) {
			t.Fatalf("session %s still there after its ttl", name)
		}
		m.finish(done2, "the writer by name")
		close(stop)
		m.finish(done1, "the writer to an open file")
		if err := openErr.Load(); err != nil {
			t.Fatalf("write to an open file while its session ended: %v", err)
		}
		if err := nameErr.Load(); err != nil {
			t.Fatalf("create in an ending session: %v, want success or ENOENT", err)
		}
		f.Close()
		m.wantEmptyEnded(sess)
	}
	m.waitBaseline()
}

// TestSessionRaceCreate: sessions end while entries of every kind are being
// made in them. Whatever was made must go with the session.
func TestSessionRaceCreate(t *testing.T) {
	m := mountSessions(t, sessOpts{})
	makers := map[string]func(p string) error{
		"file":    func(p string) error { return os.WriteFile(p, []byte("x"), 0o644) },
		"dir":     func(p string) error { return os.Mkdir(p, 0o755) },
		"symlink": func(p string) error { return os.Symlink("target", p) },
		"fifo":    func(p string) error { return unix.Mkfifo(p, 0o644) },
	}
	kinds := []string{"file", "dir", "symlink", "fifo"}
	for i := range 2 * sessRaceIterations {
		name := fmt.Sprintf("c%d", i)
		s := m.mkSession(name)
		sess := m.mustSession(name)
		var wg sync.WaitGroup
		var started sync.WaitGroup
		var bad atomic.Value
		// The kernel makes one entry at a time per directory: a maker
		// per subdirectory keeps several creations in flight at once.
		var subdirs []*gofs.Inode
		for k, dir := range []string{"", "d1", "d2", "d3", "d4", "d5", "d6", "d7"} {
			if dir != "" {
				if err := os.Mkdir(filepath.Join(s, dir), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if dir != "" {
				subdirs = append(subdirs, sess.dir.GetChild(dir))
			}
			kind := kinds[k%len(kinds)]
			mk := makers[kind]
			wg.Add(1)
			started.Add(1)
			go func() {
				defer wg.Done()
				signalled := false
				defer func() {
					if !signalled {
						started.Done()
					}
				}()
				for j := 0; ; j++ {
					if err := mk(filepath.Join(s, dir, fmt.Sprintf("%s%d", kind, j))); err != nil {
						if !errors.Is(err, os.ErrNotExist) {
							bad.Store(fmt.Errorf("%s: %w", kind, err))
						}
						return
					}
					if j == 0 {
						started.Done()
						signalled = true
					}
				}
			}()
		}
		started.Wait()
		m.setx(s, control.AttrEnd, "1")
		m.expire()
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		m.finish(done, "the makers")
		if err := bad.Load(); err != nil {
			t.Fatalf("making entries in an ending session: %v, want success or ENOENT", err)
		}
		m.wantGone(name)
		m.wantEmptyEnded(sess, subdirs...)
	}
	m.waitBaseline()
}

// TestSessionRaceRename: sessions end while entries inside are renamed.
func TestSessionRaceRename(t *testing.T) {
	m := mountSessions(t, sessOpts{})
	for i := range sessRaceIterations {
		name := fmt.Sprintf("r%d", i)
		s := m.mkSession(name)
		sess := m.mustSession(name)
		for _, d := range []string{"d1", "d2"} {
			if err := os.Mkdir(filepath.Join(s, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		sessWriteN(t, filepath.Join(s, "a"), 8192)
		sessWriteN(t, filepath.Join(s, "d1/x"), 4096)
		started := make(chan struct{})
		done := make(chan struct{})
		var bad atomic.Value
		go func() {
			defer close(done)
			signalled := false
			defer func() {
				if !signalled {
					close(started)
				}
			}()
			moves := [][2]string{{"a", "b"}, {"b", "d1/b"}, {"d1/b", "d2/c"}, {"d2/c", "a"}, {"d1", "d2/d1"}, {"d2/d1", "d1"}}
			for j := 0; ; j++ {
				mv := moves[j%len(moves)]
				err := os.Rename(filepath.Join(s, mv[0]), filepath.Join(s, mv[1]))
				if err != nil {
					if !errors.Is(err, os.ErrNotExist) {
						bad.Store(err)
					}
					return
				}
				if j == 0 {
					close(started)
					signalled = true
				}
			}
		}()
		<-started
		if err := bad.Load(); err != nil {
			t.Fatalf("rename in a session: %v", err)
		}
		m.setx(s, control.AttrEnd, "1")
		m.expire()
		m.finish(done, "the renamer")
		if err := bad.Load(); err != nil {
			t.Fatalf("rename in an ending session: %v, want success or ENOENT", err)
		}
		m.wantGone(name)
		m.wantEmptyEnded(sess)
	}
	m.waitBaseline()
}

// TestSessionRaceListRoot: sessions come and go while the root is listed.
func TestSessionRaceListRoot(t *testing.T) {
	m := mountSessions(t, sessOpts{})
	stop := make(chan struct{})
	var stopOnce sync.Once
	done := make(chan struct{}, 2)
	t.Cleanup(func() { // before the unmount, even after a failure
		stopOnce.Do(func() { close(stop) })
		for range 2 {
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				mounts.Abort(m.conn)
				return
			}
		}
	})
	var bad atomic.Value
	var lists atomic.Int64
	for range 2 {
		go func() {
			defer func() { done <- struct{}{} }()
			for {
				select {
				case <-stop:
					return
				default:
				}
				entries, err := os.ReadDir(m.dir)
				if err != nil {
					bad.Store(err)
					return
				}
				for _, e := range entries {
					if _, err := e.Info(); err != nil && !errors.Is(err, os.ErrNotExist) {
						bad.Store(err)
						return
					}
				}
				lists.Add(1)
			}
		}()
	}
	for i := range sessRaceIterations {
		var names []string
		for j := range 3 {
			name := fmt.Sprintf("l%d-%d", i, j)
			s := m.mkSession(name)
			sessWriteN(t, filepath.Join(s, "f"), 4096)
			names = append(names, name)
		}
		for _, name := range names {
			m.setx(m.path(name), control.AttrEnd, "1")
		}
		m.expire()
		for _, name := range names {
			m.wantGone(name)
		}
	}
	stopOnce.Do(func() { close(stop) })
	if err := bad.Load(); err != nil {
		t.Fatalf("listing the root: %v", err)
	}
	if lists.Load() == 0 {
		t.Fatal("the root was never listed")
	}
	if names := m.readRoot(); len(names) != 0 {
		t.Errorf("root still lists %v", names)
	}
	m.waitBaseline()
}

// TestSessionRaceRmdirAndExpiry: rmdir of an empty session and its end by
// the expiry loop race; it ends once, with one log line.
func TestSessionRaceRmdirAndExpiry(t *testing.T) {
	m := mountSessions(t, sessOpts{})
	for i := range sessRaceIterations {
		name := fmt.Sprintf("e%d", i)
		s := m.mkSession(name)
		m.setx(s, control.AttrEnd, "1")
		done := make(chan error, 1)
		go func() { done <- unix.Rmdir(s) }()
		m.expire()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, unix.ENOENT) {
				t.Fatalf("rmdir racing the end: %v, want success or ENOENT", err)
			}
		case <-time.After(20 * time.Second):
			mounts.Abort(m.conn)
			t.Fatal("rmdir hung")
		}
		m.wantGone(name)
	}
	if n := m.f.sessions.count(); n != 0 {
		t.Errorf("%d sessions left", n)
	}
	m.waitBaseline()
	if n := strings.Count(m.logs.String(), `"msg":"session ended"`); n != sessRaceIterations {
		t.Errorf("%d \"session ended\" lines for %d sessions", n, sessRaceIterations)
	}
}

// TestSessionRacePolicy: policy changes, touches and reads race the expiry
// loop; afterwards the session still obeys the last policy set.
func TestSessionRacePolicy(t *testing.T) {
	m := mountSessions(t, sessOpts{policy: control.SessionPolicy{TTL: time.Hour, Idle: time.Hour}})
	s := m.mkSession("p")
	sessWriteN(t, filepath.Join(s, "f"), 4096)
	// The kernel sends RELEASE after close(2) has returned; until it is
	// served the file is open, and the end would log its bytes as still
	// open rather than freed.
	m.waitOpens(m.mustSession("p"), 0)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var bad atomic.Value
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; ; j++ {
				select {
				case <-stop:
					return
				default:
				}
				var err error
				switch (g + j) % 5 {
				case 0:
					err = unix.Setxattr(s, control.AttrTTL, []byte(fmt.Sprintf("%dm", 30+j%30)), 0)
				case 1:
					err = unix.Setxattr(s, control.AttrIdle, []byte(fmt.Sprintf("%dm", 30+j%30)), 0)
				case 2:
					err = unix.Setxattr(s, control.AttrTouch, []byte("1"), 0)
				case 3:
					_, err = sessGetx(s, control.AttrExpires)
				case 4:
					_, err = sessGetx(s, control.AttrUsage)
				}
				if err != nil {
					bad.Store(err)
					return
				}
			}
		}()
	}
	for range 200 {
		m.advance(time.Second) // never past 30 minutes in all
	}
	close(stop)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	m.finish(done, "the policy writers")
	if err := bad.Load(); err != nil {
		t.Fatalf("control attribute while the expiry loop ran: %v", err)
	}
	m.wantAlive("p")
	m.setx(s, control.AttrIdle, "0")
	m.setx(s, control.AttrTTL, "1s")
	if got := m.sessGetx(s, control.AttrReason); got != control.ReasonTTL {
		t.Errorf("reason %q, want ttl", got)
	}
	m.expire() // created more than 1s ago: due now
	m.wantGone("p")
	m.wantEndLog("p", control.ReasonTTL, 4096)
	m.waitBaseline()
}

// TestSessionRaceLookup: a session ends while the kernel looks its name up
// (as it does for ls -l, or any path through it after its entry expired).
// Once ended, it must not come back.
func TestSessionRaceLookup(t *testing.T) {
	m := mountSessions(t, sessOpts{})
	for i := range 5 * sessRaceIterations {
		name := fmt.Sprintf("k%d", i)
		s := m.mkSession(name)
		stop := make(chan struct{})
		started := make(chan struct{})
		done := make(chan struct{})
		var bad atomic.Value
		go func() {
			defer close(done)
			for j := 0; ; j++ {
				// Make the kernel forget the name, so that lstat asks us.
				m.f.root.NotifyEntry(name)
				_, err := os.Lstat(s)
				if err != nil && !errors.Is(err, os.ErrNotExist) {
					bad.Store(err)
				}
				if j == 0 {
					close(started)
				}
				select {
				case <-stop:
					return
				default:
				}
			}
		}()
		<-started
		m.setx(s, control.AttrEnd, "1")
		m.expire()
		close(stop)
		m.finish(done, "the lookups")
		if err := bad.Load(); err != nil {
			t.Fatalf("lstat of an ending session: %v", err)
		}
		m.f.root.NotifyEntry(name)
		if _, err := os.Lstat(s); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("ended session %s: lstat gives %v", name, err)
		}
		// A lookup that raced the end may have put the entry back into
		// go-fuse's tree after end took it out; it is invisible, and the
		// first lookup of the name (the lstat above) takes it out again.
		if m.f.root.GetChild(name) != nil {
			t.Fatalf("ended session %s is back in the root (iteration %d)", name, i)
		}
	}
	if n := m.f.sessions.count(); n != 0 {
		t.Errorf("%d sessions left", n)
	}
	m.waitBaseline()
}

// TestSessionRaceMmap: a session ends while a file in it is mapped shared
// and being written through the mapping. The mapping lives in a child
// process: a page fault on a FUSE file served by this very process would
// stall the Go runtime (stop-the-world waits for the faulting thread,
// which waits for the stopped server).
func TestSessionRaceMmap(t *testing.T) {
	const size = 256 << 10
	m := mountSessions(t, sessOpts{})
	for i := range 6 {
		name := fmt.Sprintf("m%d", i)
		s := m.mkSession(name)
		file := filepath.Join(s, "mapped")
		f, err := os.Create(file)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(size); err != nil {
			t.Fatal(err)
		}
		f.Close()

		child := exec.Command(os.Args[0], "-test.run=^TestSessionMmapHelper$")
		child.Env = append(os.Environ(), "SPOOLFS_MMAP_HELPER="+file)
		stdin, err := child.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		stdout, err := child.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr sessLogBuffer
		child.Stderr = &stderr
		if err := child.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 4)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		exited := make(chan error, 1)
		kill := func(why string) {
			child.Process.Kill()
			mounts.Abort(m.conn)
			t.Fatalf("mmap child: %s\nstderr: %s", why, stderr.String())
		}
		select {
		case l := <-lines:
			if l != "started" {
				kill(fmt.Sprintf("said %q, want started", l))
			}
		case <-time.After(20 * time.Second):
			kill("did not start writing")
		}
		m.setx(s, control.AttrEnd, "1")
		m.expire()
		m.wantGone(name)
		stdin.Write([]byte("ended\n"))
		stdin.Close()
		var said []string
		go func() {
			for l := range lines {
				said = append(said, l)
			}
			exited <- child.Wait()
		}()
		select {
		case err := <-exited:
			if err != nil || !sessContains(said, "ok") {
				t.Fatalf("mmap child: %v, said %q\nstderr: %s", err, said, stderr.String())
			}
		case <-time.After(20 * time.Second):
			kill("did not finish: deadlock?")
		}
	}
	m.waitBaseline()
}

// TestSessionMmapHelper is the child process of TestSessionRaceMmap: it
// maps the file shared and writes through the mapping, syncing now and
// then, until told on stdin that the session has ended; then it rewrites
// every byte, syncs, and checks what the file reads back.
func TestSessionMmapHelper(t *testing.T) {
	path := os.Getenv("SPOOLFS_MMAP_HELPER")
	if path == "" {
		t.Skip("the child process of TestSessionRaceMmap")
	}
	if err := sessMmapHelper(path); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("ok")
	os.Exit(0)
}

func sessMmapHelper(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	size := int(st.Size())
	mem, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return err
	}
	ended := make(chan struct{})
	go func() {
		bufio.NewReader(os.Stdin).ReadString('\n')
		close(ended)
	}()
	for j := 0; ; j++ {
		mem[(j*4099)%size] = byte(j)
		if j%512 == 0 {
			if err := unix.Msync(mem, unix.MS_SYNC); err != nil {
				return fmt.Errorf("msync while writing: %w", err)
			}
		}
		if j == 0 {
			fmt.Println("started")
		}
		select {
		case <-ended:
		default:
			continue
		}
		break
	}
	for j := range mem {
		mem[j] = byte(j * 7)
	}
	if err := unix.Msync(mem, unix.MS_SYNC); err != nil {
		return fmt.Errorf("msync after the end: %w", err)
	}
	if err := unix.Munmap(mem); err != nil {
		return err
	}
	got := make([]byte, size)
	if _, err := f.ReadAt(got, 0); err != nil {
		return fmt.Errorf("read back after the end: %w", err)
	}
	for j := range got {
		if got[j] != byte(j*7) {
			return fmt.Errorf("byte %d reads back %d, want %d", j, got[j], byte(j*7))
		}
	}
	return nil
}

// TestSessionQuota: a session over its quota gets EDQUOT while its
// neighbour keeps writing; the mount's own limit still gives ENOSPC; statfs
// inside a session shows the session's limit.
func TestSessionQuota(t *testing.T) {
	m := mountSessions(t, sessOpts{size: 6 << 20})
	a, b := m.mkSession("a"), m.mkSession("b")
	m.setx(a, control.AttrSize, strconv.Itoa(1<<20))
	if got := m.sessGetx(a, control.AttrSize); got != "1048576" {
		t.Errorf("size %q", got)
	}

	var sfs unix.Statfs_t
	if err := unix.Statfs(a, &sfs); err != nil {
		t.Fatal(err)
	}
	if total := int64(sfs.Blocks) * sfs.Bsize; total != 1<<20 {
		t.Errorf("statfs in the session: %d blocks of %d = %d, want 1 MiB", sfs.Blocks, sfs.Bsize, total)
	}
	if err := unix.Statfs(m.dir, &sfs); err != nil {
		t.Fatal(err)
	}
	if total := int64(sfs.Blocks) * sfs.Bsize; total != 6<<20 {
		t.Errorf("statfs at the root: %d, want 6 MiB", total)
	}

	done := make(chan error, 1)
	go func() {
		f, err := os.Create(filepath.Join(b, "steady"))
		if err != nil {
			done <- err
			return
		}
		defer f.Close()
		chunk := make([]byte, 64<<10)
		for range 32 { // 2 MiB
			if _, err := f.Write(chunk); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	f, err := os.Create(filepath.Join(a, "big"))
	if err != nil {
		t.Fatal(err)
	}
	n, err := f.Write(make([]byte, 2<<20))
	f.Close()
	if !errors.Is(err, syscall.EDQUOT) {
		t.Errorf("writing 2 MiB into a 1 MiB session: %d bytes, %v; want EDQUOT", n, err)
	}
	if n > 1<<20 {
		t.Errorf("wrote %d bytes into a 1 MiB session", n)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("the neighbour's writes: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the neighbour's writes hung")
	}
	if err := unix.Statfs(a, &sfs); err != nil {
		t.Fatal(err)
	}
	if sfs.Bavail != 0 {
		t.Errorf("statfs in the full session: %d blocks available, want 0", sfs.Bavail)
	}
	// Programs ask about the file they write (df FILE, fstatfs on the
	// descriptor), and a subdirectory: the same figures.
	if err := os.Mkdir(filepath.Join(a, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(a, "big"), filepath.Join(a, "sub")} {
		if err := unix.Statfs(p, &sfs); err != nil {
			t.Fatal(err)
		}
		if total := int64(sfs.Blocks) * sfs.Bsize; total != 1<<20 || sfs.Bavail != 0 {
			t.Errorf("statfs %s: %d bytes in %d blocks of %d, %d available; want 1 MiB, 0 available",
				p, total, sfs.Blocks, sfs.Bsize, sfs.Bavail)
		}
	}
	if fd, err := os.Open(filepath.Join(a, "big")); err == nil {
		if err := unix.Fstatfs(int(fd.Fd()), &sfs); err != nil {
			t.Fatal(err)
		}
		if total := int64(sfs.Blocks) * sfs.Bsize; total != 1<<20 {
			t.Errorf("fstatfs of a file in the session: %d bytes in %d blocks of %d; want 1 MiB", total, sfs.Blocks, sfs.Bsize)
		}
		fd.Close()
	}

	// The neighbour has no limit of its own: the mount's gives ENOSPC.
	g, err := os.Create(filepath.Join(b, "fill"))
	if err != nil {
		t.Fatal(err)
	}
	n, err = g.Write(make([]byte, 6<<20))
	g.Close()
	m.waitOpens(m.mustSession("b"), 0)
	if !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("filling the mount from a session: %d bytes, %v; want ENOSPC", n, err)
	}
	if u := m.root.Usage(); u.Bytes > 6<<20 {
		t.Errorf("mount usage %d over its 6 MiB", u.Bytes)
	}

	// Raising the session's limit lets it write again.
	if err := os.Remove(filepath.Join(b, "fill")); err != nil {
		t.Fatal(err)
	}
	m.setx(a, control.AttrSize, strconv.Itoa(2<<20))
	sessWriteN(t, filepath.Join(a, "more"), 512<<10)

	// Inode quota: the session directory itself counts.
	m.setx(b, control.AttrInodes, "5")
	var made int
	for made = 0; made < 10; made++ {
		if err := os.WriteFile(filepath.Join(b, fmt.Sprintf("i%d", made)), nil, 0o644); err != nil {
			if !errors.Is(err, syscall.EDQUOT) {
				t.Errorf("inode quota: %v, want EDQUOT", err)
			}
			break
		}
	}
	if u := m.mustSession("b").acct.Usage(); u.Inodes != 5 {
		t.Errorf("session b holds %d inodes at its limit of 5 (made %d files)", u.Inodes, made)
	}
	if err := unix.Statfs(b, &sfs); err != nil {
		t.Fatal(err)
	}
	if sfs.Files != 5 || sfs.Ffree != 0 {
		t.Errorf("statfs inodes in session b: %d total, %d free; want 5, 0", sfs.Files, sfs.Ffree)
	}

	for _, s := range []string{a, b} {
		m.setx(s, control.AttrEnd, "1")
	}
	m.expire()
	m.waitBaseline()
}

// sessSetfattrAs runs setfattr as uid (and gid uid) and returns its stderr
// and exit error.
func sessSetfattrAs(uid uint32, args ...string) (string, error) {
	cmd := exec.Command("setfattr", args...)
	if uid != 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	}
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LC_ALL=C"}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	return stderr.String(), err
}

// TestSessionPolicyRules: who may change what.
func TestSessionPolicyRules(t *testing.T) {
	m := mountSessions(t, sessOpts{policy: control.SessionPolicy{TTL: 2 * time.Hour}})
	const user = 1000
	s := m.mkSession("rules")
	// World-writable, so that the kernel lets uid 1000 through to us and
	// it is spoolfs that must refuse.
	if err := os.Chmod(s, 0o777); err != nil {
		t.Fatal(err)
	}

	refuse := func(uid uint32, name, value, wantMsg string) {
		t.Helper()
		stderr, err := sessSetfattrAs(uid, "-n", name, "-v", value, s)
		if err == nil || !strings.Contains(stderr, wantMsg) {
			t.Errorf("uid %d: setfattr %s=%s: %v %q; want failure with %q", uid, name, value, err, stderr, wantMsg)
		}
	}
	allow := func(uid uint32, name, value string) {
		t.Helper()
		if stderr, err := sessSetfattrAs(uid, "-n", name, "-v", value, s); err != nil {
			t.Errorf("uid %d: setfattr %s=%s: %v %s", uid, name, value, err, stderr)
		}
	}
	const eperm, einval = "Operation not permitted", "Invalid argument"

	t.Run("non-owner", func(t *testing.T) {
		for _, name := range []string{control.AttrTTL, control.AttrIdle, control.AttrSize, control.AttrInodes, control.AttrEnd, control.AttrTouch} {
			refuse(user, name, "1h", eperm)
		}
		refuse(user, control.AttrPID, "1", eperm)
		if got := m.sessGetx(s, control.AttrTTL); got != "2h0m0s" {
			t.Errorf("ttl changed to %q by a non-owner", got)
		}
		m.expire()
		m.wantAlive("rules")
		// Anyone who can write the directory may still put files in it.
		cmd := exec.Command("sh", "-c", "echo hi > "+filepath.Join(s, "by-user"))
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: user, Gid: user}}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("uid %d writing in a 0777 session: %v %s", user, err, out)
		}
	})
	m.waitOpens(m.mustSession("rules"), 0) // or the end finds by-user still open

	if err := os.Chown(s, user, user); err != nil {
		t.Fatal(err)
	}
	t.Run("owner", func(t *testing.T) {
		allow(user, control.AttrTTL, "1h")
		if got := m.sessGetx(s, control.AttrTTL); got != "1h0m0s" {
			t.Errorf("ttl %q after the owner set 1h", got)
		}
		allow(user, control.AttrTTL, "2h")
		refuse(user, control.AttrTTL, "3h", eperm)
		refuse(user, control.AttrTTL, "2h0m1s", eperm)
		refuse(user, control.AttrTTL, "0", eperm)
		refuse(user, control.AttrTTL, "none", eperm)
		if got := m.sessGetx(s, control.AttrTTL); got != "2h0m0s" {
			t.Errorf("ttl %q after refused changes", got)
		}
		for _, bad := range []string{"-5s", "abc", "12x"} {
			refuse(user, control.AttrTTL, bad, einval)
			refuse(user, control.AttrIdle, bad, einval)
		}
		refuse(user, control.AttrSize, "abc", einval)
		refuse(user, control.AttrSize, "-1", einval)
		refuse(user, control.AttrInodes, "1.5", einval)
		// No ceiling on idle: the owner may set any.
		allow(user, control.AttrIdle, "48h")
		allow(user, control.AttrIdle, "0")
		allow(user, control.AttrSize, "1048576")
		allow(user, control.AttrTouch, "1")
		// Figures are read-only, for everyone.
		refuse(user, control.AttrUsage, "{}", eperm)
		refuse(user, control.AttrExpires, "never", eperm)
	})
	t.Run("root", func(t *testing.T) {
		allow(0, control.AttrTTL, "3h")
		if got := m.sessGetx(s, control.AttrTTL); got != "3h0m0s" {
			t.Errorf("ttl %q after root set 3h", got)
		}
		allow(0, control.AttrTTL, "0")
		if got := m.sessGetx(s, control.AttrTTL); got != "0s" {
			t.Errorf("ttl %q after root set 0", got)
		}
		if got := m.sessGetx(s, control.AttrExpires); got != "never" {
			t.Errorf("expires %q with no ttl and no idle", got)
		}
		for _, bad := range []string{"-5s", "abc", "12x"} {
			refuse(0, control.AttrTTL, bad, einval)
		}
		refuse(0, control.AttrUsage, "{}", eperm)
		refuse(0, control.AttrCreated, "x", eperm)
		refuse(0, control.Prefix+"bogus", "x", eperm)
		if err := unix.Setxattr(m.dir, control.AttrStatus, []byte("{}"), 0); !errors.Is(err, syscall.EPERM) {
			t.Errorf("setting the root's status: %v, want EPERM", err)
		}
		if err := unix.Setxattr(m.dir, control.AttrTTL, []byte("1h"), 0); !errors.Is(err, syscall.EPERM) {
			t.Errorf("setting a session attribute on the root: %v, want EPERM", err)
		}
	})
	t.Run("end by the owner", func(t *testing.T) {
		allow(user, control.AttrEnd, "1")
		m.expire()
		m.wantGone("rules")
		m.wantEndLog("rules", control.ReasonRemoved, 4096)
	})
	m.waitBaseline()
}

// TestSessionDefaults: mkdir at the root makes a session with the mount's
// policy.
func TestSessionDefaults(t *testing.T) {
	p := control.SessionPolicy{TTL: 2 * time.Hour, Idle: 30 * time.Minute, Bytes: 8 << 20, Inodes: 100}
	m := mountSessions(t, sessOpts{policy: p})
	t0 := m.clock.Now()
	s := m.mkSession("d")
	want := map[string]string{
		control.AttrTTL: "2h0m0s", control.AttrIdle: "30m0s", control.AttrSize: "8388608", control.AttrInodes: "100", control.AttrPID: "0",
		control.AttrReason: control.ReasonIdle, control.AttrExpires: sessRFC(t0.Add(30 * time.Minute)), control.AttrCreated: sessRFC(t0),
	}
	for name, v := range want {
		if got := m.sessGetx(s, name); got != v {
			t.Errorf("%s = %q, want %q", name, got, v)
		}
	}
	var sfs unix.Statfs_t
	if err := unix.Statfs(s, &sfs); err != nil {
		t.Fatal(err)
	}
	if total := int64(sfs.Blocks) * sfs.Bsize; total != 8<<20 || sfs.Files != 100 {
		t.Errorf("statfs: %d bytes, %d inodes; want 8 MiB, 100", total, sfs.Files)
	}
	// Every control attribute that listxattr names can be read, and the
	// policy is among them (cp -a carries it to a copy).
	buf := make([]byte, 4096)
	n, err := unix.Listxattr(s, buf)
	if err != nil {
		t.Fatal(err)
	}
	listed := strings.Split(strings.TrimSuffix(string(buf[:n]), "\x00"), "\x00")
	for _, name := range []string{control.AttrTTL, control.AttrIdle, control.AttrSize, control.AttrInodes} {
		if !sessContains(listed, name) {
			t.Errorf("listxattr lacks %s: %q", name, listed)
		}
	}
	for _, name := range listed {
		if _, err := sessGetx(s, name); err != nil {
			t.Errorf("listxattr names %s, which getxattr fails on: %v", name, err)
		}
	}
	// Made by another user, owned by that user, same defaults.
	cmd := exec.Command("mkdir", m.path("theirs"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 1000, Gid: 1000}}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mkdir as uid 1000: %v %s", err, out)
	}
	var st unix.Stat_t
	if err := unix.Stat(m.path("theirs"), &st); err != nil || st.Uid != 1000 {
		t.Errorf("session made by uid 1000: uid %d, %v", st.Uid, err)
	}
	if got := m.sessGetx(m.path("theirs"), control.AttrTTL); got != "2h0m0s" {
		t.Errorf("ttl of uid 1000's session: %q", got)
	}
	var status control.Status
	if err := json.Unmarshal([]byte(m.sessGetx(m.dir, control.AttrStatus)), &status); err != nil {
		t.Fatal(err)
	}
	if status.Sessions != 2 || status.SessionDefaults != p {
		t.Errorf("status: %d sessions, defaults %+v", status.Sessions, status.SessionDefaults)
	}
	m.advance(30*time.Minute + time.Second)
	m.wantGone("d")
	m.wantGone("theirs")
	m.waitBaseline()
}

func sessContains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestSessionRename: no entry crosses a session's border; a session may be
// renamed within the root and keeps its policy.
func TestSessionRename(t *testing.T) {
	m := mountSessions(t, sessOpts{})
	a, b := m.mkSession("a"), m.mkSession("b")
	sessWriteN(t, filepath.Join(a, "f"), 4096)
	if err := os.Mkdir(filepath.Join(a, "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	sessWriteN(t, m.path("rootfile"), 4096) // a file at the root level

	exdev := [][2]string{
		{filepath.Join(a, "f"), filepath.Join(b, "f")},
		{filepath.Join(a, "dir"), filepath.Join(b, "dir")},
		{m.path("rootfile"), filepath.Join(a, "rootfile")},
		{filepath.Join(a, "f"), m.path("f")},
		{a, filepath.Join(b, "a")}, // a session into another
	}
	for _, mv := range exdev {
		if err := unix.Rename(mv[0], mv[1]); !errors.Is(err, unix.EXDEV) {
			t.Errorf("rename %s -> %s: %v, want EXDEV", mv[0], mv[1], err)
		}
	}
	if err := unix.Link(filepath.Join(a, "f"), filepath.Join(b, "hard")); !errors.Is(err, unix.EXDEV) {
		t.Errorf("link across sessions: %v, want EXDEV", err)
	}
	if err := unix.Renameat2(unix.AT_FDCWD, filepath.Join(a, "f"), unix.AT_FDCWD, m.path("rootfile"), unix.RENAME_EXCHANGE); !errors.Is(err, unix.EXDEV) {
		t.Errorf("exchange across the border: %v, want EXDEV", err)
	}
	if err := os.Remove(m.path("rootfile")); err != nil {
		t.Fatal(err)
	}

	// Renaming a session keeps its policy, its account and its deadline.
	m.setx(a, control.AttrTTL, "30m")
	m.setx(a, control.AttrSize, strconv.Itoa(64<<10))
	sess := m.mustSession("a")
	a2 := m.path("a2")
	if err := os.Rename(a, a2); err != nil {
		t.Fatalf("renaming a session: %v", err)
	}
	if m.mustSession("a2") != sess {
		t.Fatal("the renamed directory is a different session")
	}
	if got := m.sessGetx(a2, control.AttrTTL); got != "30m0s" {
		t.Errorf("ttl after rename: %q", got)
	}
	if got := m.sessGetx(a2, control.AttrSize); got != "65536" {
		t.Errorf("size after rename: %q", got)
	}
	if _, err := os.Stat(filepath.Join(a2, "f")); err != nil {
		t.Errorf("content after rename: %v", err)
	}
	if err := os.WriteFile(filepath.Join(a2, "big"), make([]byte, 128<<10), 0o644); !errors.Is(err, syscall.EDQUOT) {
		t.Errorf("quota after rename: %v, want EDQUOT", err)
	}
	os.Remove(filepath.Join(a2, "big"))
	m.waitOpens(sess, 0)

	// Renaming a session over an empty one ends the one replaced.
	if err := unix.Rename(a2, b); err != nil { // os.Rename refuses to replace a directory
		t.Fatalf("renaming a session over an empty one: %v", err)
	}
	if n := m.f.sessions.count(); n != 1 {
		t.Errorf("%d sessions after replacing one, want 1", n)
	}
	if m.mustSession("b") != sess {
		t.Fatal("b is not the renamed session")
	}
	m.advance(30*time.Minute + time.Second)
	m.wantGone("b")
	m.wantEndLog("b", control.ReasonTTL, 4096)
	m.waitBaseline()
}
