package fusetest

import (
	"errors"
	"io/fs"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/spoolfs/spoolfs/fs/mounts"
)

// CheckNothingLeft fails if dir is still mounted or the spill directory
// holds anything at all.
func CheckNothingLeft(t testing.TB, dir, spillDir string) {
	t.Helper()
	checkUnmounted(t, dir)
	entries, err := os.ReadDir(spillDir)
	if err != nil {
		t.Errorf("reading spill dir: %v", err)
	}
	for _, e := range entries {
		t.Errorf("spill dir %s still holds %s", spillDir, e.Name())
	}
}

// checkUnmounted fails if dir is still mounted, and takes off what is
// there (stacked mounts too), so that a failed test leaves nothing behind.
func checkUnmounted(t testing.TB, dir string) {
	t.Helper()
	if mounts.IsMounted(dir) {
		t.Errorf("%s is still mounted", dir)
		for i := 0; i < 16 && mounts.IsMounted(dir); i++ {
			mounts.Unmount(dir)
		}
	}
}

// OpenFDs lists this process's descriptors with what they point to; nil
// where the system has no /proc/self/fd to list them by.
func OpenFDs(t testing.TB) map[string]string {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
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

// fdLeakGrace is how long CheckNoFDLeak waits for a descriptor to close:
// go-fuse closes /dev/fuse in its serve goroutine a moment after Wait
// returns.
const fdLeakGrace = 5 * time.Second

// CheckNoFDLeak fails if a descriptor opened since before was taken is
// still open and points into a spill directory or /dev/fuse. Other
// descriptors (the Go runtime's, the test framework's) come and go on
// their own.
func CheckNoFDLeak(t testing.TB, before map[string]string) {
	t.Helper()
	if before == nil {
		return // nothing to compare with
	}
	var leaked []string
	deadline := time.Now().Add(fdLeakGrace)
	for {
		leaked = leaked[:0]
		for fd, target := range OpenFDs(t) {
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
