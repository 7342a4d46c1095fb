//go:build linux

package fs

// A session owned by a process ends when that process exits.

import (
	"errors"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/spoolfs/spoolfs/fs/control"
	"github.com/spoolfs/spoolfs/fs/fusetest"
)

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
	fusetest.WaitFor(t, 10*time.Second, "reason owner-exited", func() bool {
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
