//go:build linux

package fs

// The harness of fs's session tests: a spoolfs mounted in this process
// through fusetest, with a fake clock that moves only when a test says so
// and expiry that runs only when a test calls expire, and the checks the
// tests share (a session alive or gone, everything freed, the end logged).

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"golang.org/x/sys/unix"

	"github.com/spoolfs/spoolfs/fs/control"
	"github.com/spoolfs/spoolfs/fs/fusetest"
	"github.com/spoolfs/spoolfs/quota"
	"github.com/spoolfs/spoolfs/spill"
)

// sessOpts configures a test mount.
type sessOpts struct {
	policy    control.SessionPolicy
	size      int64 // the mount's byte limit; 0: none
	threshold int64 // spill threshold; 0 means 64 MiB (files stay in RAM)
	spillAll  bool  // spill every byte (threshold 0)
	deadline  time.Duration
	cache     int64 // page cache budget of closed files (Config.CacheBudget)
	observer  Observer
	// noPassthrough: reads of spilled files come to the daemon.
	noPassthrough bool
	// disabledCaps are FUSE capabilities not to ask the kernel for.
	disabledCaps uint64
}

// sessMount is an in-process mount with a fake clock.
type sessMount struct {
	t     testing.TB
	dir   string
	f     *FS
	pool  *spill.Pool
	root  *quota.Account
	clock *fusetest.Clock
	logs  *fusetest.LogBuffer
	mnt   *fusetest.Mounted
}

// sessBaseline is an empty mount: the root directory's inode.
var sessBaseline = quota.Usage{Bytes: 0, Inodes: 1}

// mountSessions mounts a spoolfs with a fake clock through fusetest, which
// unmounts it in t.Cleanup and checks that nothing is left behind.
func mountSessions(t testing.TB, o sessOpts) *sessMount {
	t.Helper()
	fusetest.Require(t) // before the cleanup below, which has nothing to log then
	if o.deadline == 0 {
		o.deadline = 60 * time.Second
	}
	threshold := o.threshold
	if threshold == 0 && !o.spillAll {
		threshold = 64 << 20
	}
	m := &sessMount{t: t, clock: fusetest.NewClock(), logs: &fusetest.LogBuffer{}}
	// Registered before the mount, so that it runs after the unmount and
	// the leak checks: the log then says what led to any failure of theirs.
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("daemon log:\n%s", m.logs.String())
		}
	})
	dir, spillDir := t.TempDir(), t.TempDir()
	// Let other users reach the mount point (t.TempDir's parent is 0700).
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	m.mnt = fusetest.Mount(t, fusetest.Options{Dir: dir, Deadline: o.deadline, SpillDir: spillDir}, func() fusetest.FS {
		var err error
		m.pool, err = spill.NewPool(spill.Config{Dir: spillDir, Threshold: threshold, RAMBudget: 256 << 20})
		if err != nil {
			t.Fatal(err)
		}
		m.root = quota.NewRoot(quota.Limits{Bytes: o.size})
		logger := slog.New(slog.NewJSONHandler(m.logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
		m.f, err = New(Config{Pool: m.pool, Quota: m.root, RootMode: 0o1777, Sessions: o.policy, Logger: logger, Now: m.clock.Now, CacheBudget: o.cache, Observer: o.observer,
			NoPassthrough: o.noPassthrough})
		if err != nil {
			t.Fatal(err)
		}
		opts := m.f.Options()
		opts.DisabledCapabilities = o.disabledCaps
		return fusetest.FS{Root: m.f.Root(), Options: opts, Raw: m.f.RawFS, Mounted: m.f.Mounted, Close: m.f.Close}
	})
	m.dir = m.mnt.Dir
	return m
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
	fusetest.WaitFor(m.t, time.Minute, "the kernel told of every ended session", m.f.sessions.reaper.idle)
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
	fusetest.WaitFor(m.t, 10*time.Second, fmt.Sprintf("%d open files in the session", n), func() bool { return s.opens.Load() == n })
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
