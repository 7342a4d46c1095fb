package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/spoolfs/spoolfs/fs/mounts"
)

// TestShutdownLeavesCoveringMountAlone: when another filesystem has been
// mounted over a spoolfs (a container runtime's bind, an administrator's
// tmpfs), the daemon's shutdown must not unmount that one by path. It cuts
// off its own connection instead, exits, and leaves its dead mount under
// the other for 'spoolfs umount' to clear once the other is gone.
func TestShutdownLeavesCoveringMountAlone(t *testing.T) {
	m := mountBinary(t)
	writeFile(t, filepath.Join(m.Dir, "ours"), []byte("ours"))
	if err := unix.Mount("tmpfs", m.Dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatalf("mount tmpfs over the spoolfs: %v", err)
	}
	covered := true
	t.Cleanup(func() {
		if covered {
			unix.Unmount(m.Dir, unix.MNT_DETACH)
		}
	})
	writeFile(t, filepath.Join(m.Dir, "theirs"), []byte("theirs"))

	if err := syscall.Kill(m.PID, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	m.waitGone(t)
	if got, err := os.ReadFile(filepath.Join(m.Dir, "theirs")); err != nil || string(got) != "theirs" {
		t.Fatalf("the tmpfs over the spoolfs after the daemon's shutdown: %q, %v", got, err)
	}
	if err := unix.Unmount(m.Dir, 0); err != nil {
		t.Fatalf("unmount the tmpfs: %v", err)
	}
	covered = false
	code, _, stderr := runSpoolfs(t, "umount", m.Dir)
	if code != 0 {
		t.Fatalf("spoolfs umount of the dead mount left under the tmpfs: exit %d: %s", code, strings.TrimSpace(stderr))
	}
	if mounts.IsMounted(m.Dir) {
		t.Errorf("%s is still a mount point", m.Dir)
	}
}

// TestShutdownWithCopyInAnotherNamespace: a process that made a mount
// namespace after spoolfs mounted (a container, a service with
// PrivateTmp=) holds a copy of the mount, which keeps the FUSE connection
// alive after the daemon unmounts its own. A signal still ends the daemon:
// it cuts the connection off rather than serve the copy for ever.
func TestShutdownWithCopyInAnotherNamespace(t *testing.T) {
	m := mountBinary(t)
	// Nothing open or in flight: the daemon's own unmount succeeds at
	// once, and only the copy keeps the connection alive. (A busy mount
	// is detached and cut off anyway.)
	holder := exec.Command("unshare", "-m", "--propagation", "private", "sleep", "600")
	if err := holder.Start(); err != nil {
		t.Fatalf("unshare: %v", err)
	}
	t.Cleanup(func() { holder.Process.Kill(); holder.Wait() })
	waitFor(t, 30*time.Second, "the copy in the new namespace", func() bool {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", holder.Process.Pid))
		return err == nil && strings.Contains(string(data), " "+m.Dir+" ")
	})
	if err := syscall.Kill(m.PID, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	m.waitGone(t)
	if mounts.IsMounted(m.Dir) {
		t.Errorf("%s is still mounted here", m.Dir)
	}
}
