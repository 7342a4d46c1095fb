package test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/spoolfs/spoolfs/fs/fusetest"
)

// TestIdleDaemonWaitsInPoller: an idle daemon has no thread blocked in
// read(2) on /dev/fuse. Such a thread keeps its P in a system call, and the
// Go runtime then hands the P to another thread for each request that
// waited more than 20 µs, which cost more CPU per 4 KiB write than serving
// it (BenchmarkRoundTrip). Readers wait in the runtime's poller instead
// (fs/internal/go-fuse, fuse/fusefd.go).
func TestIdleDaemonWaitsInPoller(t *testing.T) {
	requireFUSE(t)
	dir, spillDir := t.TempDir(), t.TempDir()
	d := startDaemon(t, dir, os.Stderr, "mount", "-f", "--spill-dir", spillDir, dir)
	pid := d.cmd.Process.Pid
	// Some requests first, so that the readers that serve them exist.
	for i := range 20 {
		writeFile(t, filepath.Join(dir, fmt.Sprintf("f%d", i)), make([]byte, 4096))
	}
	devices := fuseDevices(t, pid)
	if len(devices) == 0 {
		t.Fatal("the daemon holds no /dev/fuse descriptor")
	}
	// Nothing calls the mount now. A thread that waited in read(2) would
	// be there at every look; one that reads only when the poller says a
	// request is there, never.
	for range 20 {
		if blocked := threadsReading(t, pid, devices); len(blocked) > 0 {
			t.Fatalf("threads %v of the idle daemon are blocked in read(2) on /dev/fuse (fds %v)", blocked, devices)
		}
	}
}

// TestUnmountEndsReadersAsDeviceGone: readers waiting in the poller when
// the mount goes see the end of the connection as read(2) reports it
// (ENODEV), as blocking readers did, and stop without an error. The poller
// reports it as an error event, which Go turns into "not pollable"; taken
// as a read error, it made each waiting reader log "Failed to read from
// fuse conn" and skip what ENODEV does (cancel the requests in flight).
func TestUnmountEndsReadersAsDeviceGone(t *testing.T) {
	requireFUSE(t)
	for _, how := range []string{"umount", "SIGTERM"} {
		t.Run(how, func(t *testing.T) {
			dir, spillDir := t.TempDir(), t.TempDir()
			var stderr fusetest.LogBuffer
			d := startDaemon(t, dir, &stderr, "mount", "-f", "--spill-dir", spillDir, dir)
			for i := range 20 {
				writeFile(t, filepath.Join(dir, fmt.Sprintf("f%d", i)), make([]byte, 4096))
			}
			if how == "umount" {
				sh(t, "/", "umount "+dir)
			} else {
				d.cmd.Process.Signal(unix.SIGTERM)
			}
			d.waitCleanExit(t)
			for _, bad := range []string{"Failed to read from fuse conn", "not pollable"} {
				if strings.Contains(stderr.String(), bad) {
					t.Errorf("the daemon's log says %q:\n%s", bad, stderr.String())
				}
			}
		})
	}
}

// fuseDevices lists the descriptors of process pid that are /dev/fuse.
func fuseDevices(t *testing.T, pid int) map[uint64]bool {
	t.Helper()
	fdDir := fmt.Sprintf("/proc/%d/fd", pid)
	entries, err := os.ReadDir(fdDir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[uint64]bool{}
	for _, e := range entries {
		if target, err := os.Readlink(filepath.Join(fdDir, e.Name())); err == nil && target == "/dev/fuse" {
			fd, err := strconv.ParseUint(e.Name(), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			out[fd] = true
		}
	}
	return out
}

// threadsReading lists the threads of process pid that are in read(2) on
// one of devices, from /proc/PID/task/TID/syscall: the system call's number
// and its arguments in hex, while the thread is in one.
func threadsReading(t *testing.T, pid int, devices map[uint64]bool) []string {
	t.Helper()
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/syscall", pid))
	if err != nil || len(tasks) == 0 {
		t.Fatalf("no threads of process %d in /proc: %v", pid, err)
	}
	var out []string
	for _, p := range tasks {
		data, err := os.ReadFile(p)
		if err != nil {
			continue // the thread has just exited
		}
		f := strings.Fields(string(data))
		if len(f) < 2 || f[0] != strconv.Itoa(unix.SYS_READ) {
			continue
		}
		fd, err := strconv.ParseUint(strings.TrimPrefix(f[1], "0x"), 16, 64)
		if err == nil && devices[fd] {
			out = append(out, filepath.Base(filepath.Dir(p)))
		}
	}
	return out
}
