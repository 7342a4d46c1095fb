package fs

import (
	"syscall"

	"github.com/spoolfs/spoolfs/quota"
)

// What a node keeps in the daemon's RAM besides its attributes and file
// data — its extended attributes, a symlink's target — is charged like file
// data: to the node's quota account, so that it counts toward the byte
// quotas of the mount and the session and shows in df, and to the pool's
// RAM budget, so that --ram bounds it. The charge is the memory it takes
// (as the allocator rounds it), rounded up to metaUnit per node, which is
// what st_blocks counts in: du, df and st_blocks keep agreeing.
const metaUnit = 512

func roundUp(n, unit int64) int64 { return (n + unit - 1) / unit * unit }

// holdMeta charges n bytes of a node's metadata to its charge and to the
// RAM budget, all or nothing.
func (f *FS) holdMeta(acct *quota.Charge, n int64) error {
	if err := acct.Reserve(n); err != nil {
		return err
	}
	if err := f.pool.HoldRAM(n); err != nil {
		acct.Release(n)
		return err
	}
	return nil
}

// releaseMeta gives back what holdMeta charged.
func (f *FS) releaseMeta(acct *quota.Charge, n int64) {
	acct.Release(n)
	f.pool.ReleaseRAM(n)
}

// rechargeLocked brings the node's charge to what held bytes of metadata
// need, reserving the difference (or failing, and changing nothing) or
// giving it back. The caller holds xmu, and makes the change it charged for
// only once this has succeeded.
func (a *attrs) rechargeLocked(held int64) syscall.Errno {
	charge := roundUp(held, metaUnit)
	switch delta := charge - a.metaCharged.Load(); {
	case delta > 0:
		if err := a.fsys.holdMeta(a.charge, delta); err != nil {
			return a.fsys.toErrno("setxattr", err)
		}
	case delta < 0:
		a.fsys.releaseMeta(a.charge, -delta)
	}
	a.metaHeld = held
	a.metaCharged.Store(charge)
	return 0
}

// freeMeta gives back the node's metadata charge, once, when the node is
// freed. Its extended attributes go with it, and a setxattr that comes
// later (through /proc/PID/fd of an O_PATH descriptor, or a directory that
// was some process's cwd) finds no file.
func (a *attrs) freeMeta() {
	a.xmu.Lock()
	if a.metaGone {
		a.xmu.Unlock()
		return
	}
	a.metaGone = true
	charge := a.metaCharged.Load()
	a.xattrs, a.metaHeld = nil, 0
	a.metaCharged.Store(0)
	a.xmu.Unlock()
	a.fsys.releaseMeta(a.charge, charge)
}
