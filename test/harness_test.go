package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	spoolfs "github.com/spoolfs/spoolfs/fs"
	"github.com/spoolfs/spoolfs/fs/mounts"
	"github.com/spoolfs/spoolfs/quota"
	"github.com/spoolfs/spoolfs/spill"
)

// requireFUSE skips the test when FUSE mounts cannot be made here, or fails
// it under CI=true.
func requireFUSE(t testing.TB) {
	t.Helper()
	var why string
	switch {
	case os.Geteuid() != 0:
		why = "integration tests mount FUSE filesystems and need root"
	case !exists("/dev/fuse"):
		why = "/dev/fuse is missing (modprobe fuse, or run in a container with --device /dev/fuse)"
	}
	if why == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true but %s", why)
	}
	t.Skip(why)
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// mountOpts configures a test mount.
type mountOpts struct {
	threshold int64 // spill threshold; 0 spills every byte
	ram       int64 // RAM budget
	size      int64 // mount capacity (0: unlimited)
	inodes    int64 // inode limit (0: unlimited)
	mode      uint32
	spillDir  string // default: a fresh t.TempDir()
	deadline  time.Duration
	observer  spoolfs.Observer // nil: none
}

// inRAM and spilled are the two tiers every POSIX test runs against.
var (
	inRAM   = mountOpts{threshold: 64 << 20, ram: 256 << 20}
	spilled = mountOpts{threshold: 0, ram: 256 << 20}
)

// testMount is an in-process spoolfs mount.
type testMount struct {
	Dir      string
	SpillDir string
	FS       *spoolfs.FS
	Quota    *quota.Account
	server   *fuse.Server
	connID   uint32
}

// newMount mounts spoolfs in this process on a fresh directory. Cleanup
// unmounts it (aborting a stuck connection) and checks that nothing is left.
func newMount(t *testing.T, o mountOpts) *testMount {
	t.Helper()
	requireFUSE(t)
	if o.spillDir == "" {
		o.spillDir = t.TempDir()
	}
	if o.mode == 0 {
		o.mode = 0o1777
	}
	if o.deadline == 0 {
		o.deadline = 2 * time.Minute
	}
	fdsBefore := openFDs(t)
	pool, err := spill.NewPool(spill.Config{Dir: o.spillDir, Threshold: o.threshold, RAMBudget: o.ram})
	if err != nil {
		t.Fatal(err)
	}
	root := quota.NewRoot(quota.Limits{Bytes: o.size, Inodes: o.inodes})
	fsys, err := spoolfs.New(spoolfs.Config{Pool: pool, Quota: root, RootMode: o.mode, Observer: o.observer})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	opts := fsys.Options()
	opts.DirectMount = true
	opts.AllowOther = true
	server, err := gofs.Mount(dir, fsys.Root(), opts)
	if err != nil {
		fsys.Close()
		t.Fatalf("mount: %v", err)
	}
	m := &testMount{Dir: dir, SpillDir: o.spillDir, FS: fsys, Quota: root, server: server}
	if m.connID, err = mounts.ConnectionID(dir); err != nil {
		t.Fatalf("connection id: %v", err)
	}
	watchdog := time.AfterFunc(o.deadline, func() {
		t.Errorf("test ran past its %v deadline: aborting the FUSE connection", o.deadline)
		mounts.Abort(m.connID)
	})
	t.Cleanup(func() {
		watchdog.Stop()
		m.unmount(t)
		if err := fsys.Close(); err != nil {
			t.Errorf("closing the filesystem: %v", err)
		}
		checkNothingLeft(t, dir, o.spillDir)
		checkNoFDLeak(t, fdsBefore)
	})
	return m
}

// unmount unmounts with a deadline, aborting the connection if the server
// is stuck, and waits for the serve loop to end.
func (m *testMount) unmount(t *testing.T) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- m.server.Unmount() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("unmount: %v; detaching", err)
			mounts.Unmount(m.Dir)
		}
	case <-time.After(20 * time.Second):
		t.Errorf("unmount of %s hung: aborting its connection", m.Dir)
		mounts.Abort(m.connID)
		mounts.Unmount(m.Dir)
	}
	m.server.Wait()
}

// path joins elements onto the mount directory.
func (m *testMount) path(elem ...string) string {
	return filepath.Join(append([]string{m.Dir}, elem...)...)
}

// checkNothingLeft fails if dir is still mounted or the spill directory
// holds anything at all.
func checkNothingLeft(t *testing.T, dir, spillDir string) {
	t.Helper()
	if mounts.IsMounted(dir) {
		t.Errorf("%s is still mounted", dir)
		for i := 0; i < 16 && mounts.IsMounted(dir); i++ { // stacked mounts too
			mounts.Unmount(dir)
		}
	}
	entries, err := os.ReadDir(spillDir)
	if err != nil {
		t.Errorf("reading spill dir: %v", err)
	}
	for _, e := range entries {
		t.Errorf("spill dir %s still holds %s", spillDir, e.Name())
	}
}

// openFDs lists this process's descriptors with what they point to.
func openFDs(t testing.TB) map[string]string {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("listing fds: %v", err)
	}
	fds := make(map[string]string, len(entries))
	for _, e := range entries {
		target, _ := os.Readlink("/proc/self/fd/" + e.Name())
		fds[e.Name()] = target
	}
	return fds
}

// checkNoFDLeak fails if a descriptor opened during the test is still open
// and points into a spill directory or /dev/fuse. Other descriptors (the
// Go runtime's, the test framework's) come and go on their own. go-fuse
// closes /dev/fuse in its serve goroutine a moment after Wait returns, so
// the check polls briefly before it calls a descriptor leaked.
func checkNoFDLeak(t *testing.T, before map[string]string) {
	t.Helper()
	var leaked []string
	deadline := time.Now().Add(5 * time.Second)
	for {
		leaked = leaked[:0]
		for fd, target := range openFDs(t) {
			if before[fd] != target && (strings.Contains(target, "/spoolfs-") || target == "/dev/fuse") {
				leaked = append(leaked, fd+" -> "+target)
			}
		}
		if len(leaked) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, l := range leaked {
		t.Errorf("descriptor leaked: %s", l)
	}
}

// writeFile writes data to p through an ordinary open/write/close.
func writeFile(t testing.TB, p string, data []byte) {
	t.Helper()
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatalf("write %s: %v", p, err)
	}
}

// readFile reads p or fails the test.
func readFile(t testing.TB, p string) []byte {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	return data
}

// sh runs a shell command line and fails the test if it fails.
func sh(t testing.TB, dir, script string) string {
	t.Helper()
	cmd := exec.Command("sh", "-c", script)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
	return string(out)
}

// tiers runs fn once with files in RAM and once with every byte spilled.
func tiers(t *testing.T, fn func(t *testing.T, o mountOpts)) {
	for _, tc := range []struct {
		name string
		o    mountOpts
	}{{"ram", inRAM}, {"spilled", spilled}} {
		t.Run(tc.name, func(t *testing.T) { fn(t, tc.o) })
	}
}

// fillCounter is an Observer that counts the bytes the filesystem stored
// in the kernel's page cache after read misses.
type fillCounter struct{ filled atomic.Int64 }

func (c *fillCounter) SessionEnded(string)     {}
func (c *fillCounter) Refused(syscall.Errno)   {}
func (c *fillCounter) CacheFilled(bytes int64) { c.filled.Add(bytes) }
