package fs

import (
	"context"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/spoolfs/spoolfs/fs/control"
	"github.com/spoolfs/spoolfs/quota"
)

// Limits are the figures of a mount that can change while it is mounted,
// through user.spoolfs.limits (mount -o remount, spoolfs set).
type Limits struct {
	Size, Inodes   int64 // the mount's capacity and inodes; 0: none
	RAM            int64 // the pool's RAM budget
	SpillThreshold int64
	Sessions       control.SessionPolicy // default and ceiling of new sessions
}

// Limits returns the mount's current limits.
func (f *FS) Limits() Limits {
	q := f.quota.Limits()
	return Limits{Size: q.Bytes, Inodes: q.Inodes, RAM: f.pool.RAMBudget(),
		SpillThreshold: f.pool.Threshold(), Sessions: f.sessions.policy()}
}

// SetLimits changes the mount's limits all together or not at all: a size
// or inode count below what is in use is refused (quota.ErrNoSpace), as
// tmpfs refuses it, and so is a RAM budget that moving the coldest files to
// disk cannot get down to (spill.ErrNoRAM); files moved by then stay on
// disk, which changes nothing anyone sees but where their bytes are.
// Sessions that exist keep their own policy. The caller holds no lock.
func (f *FS) SetLimits(l Limits) error {
	f.limitsMu.Lock()
	defer f.limitsMu.Unlock()
	return f.setLimitsLocked(l)
}

// setLimitsLocked is SetLimits with limitsMu held, which keeps one change
// from slipping in while another is applied or put back.
func (f *FS) setLimitsLocked(l Limits) error {
	old := f.Limits()
	if err := f.quota.Resize(quota.Limits{Bytes: l.Size, Inodes: l.Inodes}); err != nil {
		return err
	}
	if err := f.pool.SetRAMBudget(l.RAM); err != nil {
		f.quota.SetLimits(quota.Limits{Bytes: old.Size, Inodes: old.Inodes})
		return err
	}
	if err := f.pool.SetThreshold(l.SpillThreshold); err != nil {
		f.pool.SetThreshold(old.SpillThreshold) // no higher than a budget it fitted
		f.pool.SetRAMBudget(old.RAM)            // raising it moves nothing, cannot fail
		f.quota.SetLimits(quota.Limits{Bytes: old.Size, Inodes: old.Inodes})
		return err
	}
	f.sessions.setPolicy(l.Sessions)
	f.log.Info("limits changed", "size", l.Size, "inodes", l.Inodes, "ram", l.RAM,
		"spill_threshold", l.SpillThreshold, "sessions", l.Sessions)
	return nil
}

// setLimitsControl serves a write of user.spoolfs.limits on the root:
// root's alone, as only root may remount.
func (f *FS) setLimitsControl(ctx context.Context, value string) syscall.Errno {
	if caller, _ := fuse.FromContext(ctx); caller != nil && caller.Uid != 0 {
		return syscall.EPERM
	}
	if f.parseLimits == nil {
		return syscall.EPERM
	}
	f.limitsMu.Lock()
	defer f.limitsMu.Unlock()
	l, err := f.parseLimits(value, f.Limits())
	if err != nil {
		f.log.Debug("refused limits", "value", value, "err", err)
		return syscall.EINVAL
	}
	if err := f.setLimitsLocked(l); err != nil {
		f.log.Info("refused limits", "value", value, "err", err)
		return f.limitsErrno(err)
	}
	return 0
}
