package fs

import (
	"context"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/spoolfs/spoolfs/quota"
)

// attrs is what every node kind shares: ownership, mode, link count,
// timestamps, extended attributes and the quota account it is charged to.
// Node kinds embed it; its methods are named so that they never clash with
// fs.Inode's.
type attrs struct {
	fsys *FS
	ino  uint64
	acct *quota.Account // fixed at creation: renames never cross accounts
	// charge is what the node holds is charged to: acct and the owner,
	// whom a chown changes (under mu, so that it always matches uid).
	charge *quota.Charge
	sess   *session  // the session the node is in; nil at the root level
	btime  time.Time // when the node was made: fixed, read without a lock

	mu sync.Mutex
	// Guarded by mu:
	mode                uint32 // type and permission bits
	uid, gid            uint32
	nlink               uint32
	rdev                uint32
	atime, mtime, ctime time.Time

	// xmu guards what the node keeps in RAM besides the above and its file
	// data: its extended attributes and, with a symlink's target, their
	// charge (see meta.go). It is taken before mu, and held while the
	// charge is made, which may spill other files to disk.
	xmu sync.Mutex
	// Guarded by xmu:
	xattrs   xattrList
	metaHeld int64 // bytes the extended attributes and the symlink target take
	metaGone bool  // freed: the charge is given back, nothing more is stored
	// metaCharged is what metaHeld is charged (metaHeld rounded up to
	// metaUnit); changed under xmu, read without it for st_blocks.
	metaCharged atomic.Int64
}

// initAttrs sets up the attributes of a new node made by the caller in ctx
// under parent, following the setgid-directory rule for the group.
// The caller made charge for ctx's caller (callerUID), who owns the node.
func (f *FS) initAttrs(a *attrs, ctx context.Context, parent *dirNode, mode uint32, charge *quota.Charge) {
	now := f.now()
	a.fsys, a.ino, a.acct, a.charge, a.mode, a.nlink = f, f.nextIno.Add(1), charge.Account(), charge, mode, 1
	a.atime, a.mtime, a.ctime, a.btime = now, now, now, now
	if c, ok := fuse.FromContext(ctx); ok {
		a.uid, a.gid = c.Uid, c.Gid
	}
	if parent != nil {
		a.sess = parent.sess
		parent.mu.Lock()
		if parent.mode&syscall.S_ISGID != 0 {
			a.gid = parent.gid
			if mode&syscall.S_IFMT == syscall.S_IFDIR {
				a.mode |= syscall.S_ISGID
			}
		}
		parent.mu.Unlock()
	}
}

// fillAttrLocked copies the shared attributes into out, with st_blocks
// counting the node's metadata; a file adds its data (fillSize).
func (a *attrs) fillAttrLocked(out *fuse.Attr) {
	out.Ino = a.ino
	out.Blocks = uint64(a.metaCharged.Load() / 512)
	out.Mode = a.mode
	out.Nlink = a.nlink
	out.Owner = fuse.Owner{Uid: a.uid, Gid: a.gid}
	out.Rdev = a.rdev
	out.Blksize = 4096
	out.SetTimes(&a.atime, &a.mtime, &a.ctime)
}

// touchLocked sets mtime and ctime to now, as a change of contents does.
func (a *attrs) touchLocked() {
	now := a.fsys.now()
	a.mtime, a.ctime = now, now
}

func (a *attrs) touchChange() {
	a.mu.Lock()
	a.ctime = a.fsys.now()
	a.mu.Unlock()
}

// callerUID is the uid of the process that made a request: the owner of
// what it creates. Without one (the daemon itself), root.
func callerUID(ctx context.Context) uint32 {
	if c, ok := fuse.FromContext(ctx); ok {
		return c.Uid
	}
	return 0
}

// lockForSetattr takes what setattrLocked needs: mu, and before it xmu
// when the mode changes, for the access ACL changes with it. It returns
// the function that unlocks them.
func (a *attrs) lockForSetattr(in *fuse.SetAttrIn) (unlock func()) {
	if _, ok := in.GetMode(); !ok {
		a.mu.Lock()
		return a.mu.Unlock
	}
	a.xmu.Lock()
	a.mu.Lock()
	return func() {
		a.mu.Unlock()
		a.xmu.Unlock()
	}
}

// setattrLocked applies mode, owner and time changes, under lockForSetattr.
// The kernel has checked permissions already (default_permissions); what
// is left is the rule that a change of owner clears setuid and setgid, as
// on every Linux filesystem, chmod's change to the access ACL, and the
// move of the node's charge to the new owner, which fails with EDQUOT,
// changing nothing, if the new owner has no room for it.
func (a *attrs) setattrLocked(in *fuse.SetAttrIn) syscall.Errno {
	uid, uok := in.GetUID()
	if uok && uid != a.uid {
		if err := a.charge.Chown(uid); err != nil {
			return a.fsys.toErrno("chown", err)
		}
	}
	changed := false
	if mode, ok := in.GetMode(); ok {
		a.mode = a.mode&syscall.S_IFMT | mode
		a.chmodACLLocked(mode)
		changed = true
	}
	gid, gok := in.GetGID()
	if uok || gok {
		if uok {
			a.uid = uid
		}
		if gok {
			a.gid = gid
		}
		if a.mode&syscall.S_IFMT != syscall.S_IFDIR {
			a.clearSetIDLocked()
		}
		changed = true
	}
	if in.Valid&fuse.FATTR_KILL_SUIDGID != 0 {
		a.clearSetIDLocked()
	}
	if t, ok := in.GetATime(); ok {
		a.atime = t
		changed = true
	}
	if t, ok := in.GetMTime(); ok {
		a.mtime = t
		changed = true
	}
	if changed {
		a.ctime = a.fsys.now()
	}
	if t, ok := in.GetCTime(); ok {
		a.ctime = t
	}
	return 0
}

// clearSetIDLocked drops setuid, and setgid where it means "run as group"
// (with group execute) rather than mandatory locking.
func (a *attrs) clearSetIDLocked() {
	a.mode &^= syscall.S_ISUID
	if a.mode&(syscall.S_ISGID|0o010) == syscall.S_ISGID|0o010 {
		a.mode &^= syscall.S_ISGID
	}
}

// touchTimes sets mtime and ctime to now.
func (a *attrs) touchTimes() {
	a.mu.Lock()
	a.touchLocked()
	a.mu.Unlock()
}

// wrote records a write, under one lock on the data path: mtime and ctime
// move, and setuid/setgid are cleared if the writer is unprivileged. With
// CAP_HANDLE_KILLPRIV_V2 the kernel leaves that clearing to us, and in
// exchange stops asking for security.capability before every write.
func (a *attrs) wrote(ctx context.Context) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.touchLocked()
	if a.mode&(syscall.S_ISUID|syscall.S_ISGID) == 0 {
		return
	}
	if c, ok := fuse.FromContext(ctx); ok && c.Uid != 0 {
		a.clearSetIDLocked()
	}
}
