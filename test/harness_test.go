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

	spoolfs "github.com/spoolfs/spoolfs/fs"
	"github.com/spoolfs/spoolfs/fs/fusetest"
	"github.com/spoolfs/spoolfs/fs/fuseuring"
	"github.com/spoolfs/spoolfs/quota"
	"github.com/spoolfs/spoolfs/spill"
)

// requireFUSE skips the test when FUSE mounts cannot be made here, or fails
// it under CI=true (fusetest.Require).
func requireFUSE(t testing.TB) {
	t.Helper()
	fusetest.Require(t)
}

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
	writeback bool             // the kernel's writeback cache
	transport string           // dev or uring; "": fusetest's default (SPOOLFS_TEST_TRANSPORT, else dev)
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
	mount    *fusetest.Mounted
}

// newMount mounts spoolfs in this process on a fresh directory. Cleanup
// unmounts it (aborting a stuck connection) and checks that nothing is left.
func newMount(t *testing.T, o mountOpts) *testMount {
	t.Helper()
	if o.spillDir == "" {
		o.spillDir = t.TempDir()
	}
	if o.mode == 0 {
		o.mode = 0o1777
	}
	m := &testMount{SpillDir: o.spillDir}
	m.mount = fusetest.Mount(t, fusetest.Options{Deadline: o.deadline, SpillDir: o.spillDir, Transport: o.transport}, func() fusetest.FS {
		pool, err := spill.NewPool(spill.Config{Dir: o.spillDir, Threshold: o.threshold, RAMBudget: o.ram})
		if err != nil {
			t.Fatal(err)
		}
		m.Quota = quota.NewRoot(quota.Limits{Bytes: o.size, Inodes: o.inodes})
		m.FS, err = spoolfs.New(spoolfs.Config{Pool: pool, Quota: m.Quota, RootMode: o.mode, Observer: o.observer,
			WritebackCache: o.writeback})
		if err != nil {
			t.Fatal(err)
		}
		return fusetest.FS{Root: m.FS.Root(), Options: m.FS.Options(), Raw: m.FS.RawFS, Mounted: m.FS.Mounted, Close: m.FS.Close}
	})
	m.Dir = m.mount.Dir
	return m
}

// path joins elements onto the mount directory.
func (m *testMount) path(elem ...string) string {
	return filepath.Join(append([]string{m.Dir}, elem...)...)
}

// checkNothingLeft fails if dir is still mounted or the spill directory
// holds anything at all.
func checkNothingLeft(t *testing.T, dir, spillDir string) {
	t.Helper()
	fusetest.CheckNothingLeft(t, dir, spillDir)
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

// tiers runs fn once with files in RAM and once with every byte spilled,
// over each transport of testTransports: subtests ram and spilled, and
// ram-uring and spilled-uring when the suite's default is dev.
func tiers(t *testing.T, fn func(t *testing.T, o mountOpts)) {
	for _, tr := range testTransports() {
		for _, tc := range []struct {
			name string
			o    mountOpts
		}{{"ram", inRAM}, {"spilled", spilled}} {
			name, o := tc.name, tc.o
			if tr != fusetest.Transport() {
				name += "-" + tr
				o.transport = tr
			}
			t.Run(name, func(t *testing.T) { fn(t, o) })
		}
	}
}

// testTransports is the transports the POSIX matrix runs over: the
// suite's (SPOOLFS_TEST_TRANSPORT) alone when it is set, else dev and,
// when the kernel offers it, uring.
func testTransports() []string {
	if os.Getenv(fusetest.TransportEnv) != "" {
		return []string{fusetest.Transport()}
	}
	if b, err := os.ReadFile(fuseuring.EnableParameter); err == nil && strings.TrimSpace(string(b)) == "Y" {
		return []string{"dev", "uring"}
	}
	return []string{"dev"}
}

// fillCounter is an Observer that counts the bytes the filesystem stored
// in the kernel's page cache after read misses.
type fillCounter struct{ filled atomic.Int64 }

func (c *fillCounter) SessionEnded(string)     {}
func (c *fillCounter) Refused(syscall.Errno)   {}
func (c *fillCounter) CacheFilled(bytes int64) { c.filled.Add(bytes) }
