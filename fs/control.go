package fs

import (
	"context"
	"encoding/json"
	"strconv"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/spoolfs/spoolfs/fs/control"
	"github.com/spoolfs/spoolfs/quota"
)

// The handlers of the control surface (package control has its names and
// formats): reserved extended attributes on session directories and on
// the root. The CLI uses nothing else, so it works from inside a container
// that sees only a bind-mounted session.

// getControl copies value into dest the way getxattr(2) wants.
func getControl(value string, dest []byte) (uint32, syscall.Errno) {
	if len(dest) < len(value) {
		return uint32(len(value)), syscall.ERANGE
	}
	return uint32(copy(dest, value)), 0
}

// listWith appends extra names to the node's own list.
func listWith(a *attrs, ctx context.Context, dest []byte, extra []string) (uint32, syscall.Errno) {
	size, errno := a.Listxattr(ctx, nil)
	if errno != 0 && errno != syscall.ERANGE {
		return 0, errno
	}
	own := make([]byte, size)
	if _, errno := a.Listxattr(ctx, own); errno != 0 {
		return 0, errno
	}
	for _, name := range extra {
		own = append(append(own, name...), 0)
	}
	if len(dest) < len(own) {
		return uint32(len(own)), syscall.ERANGE
	}
	return uint32(copy(dest, own)), 0
}

var (
	_ gofs.NodeGetxattrer    = (*sessionDir)(nil)
	_ gofs.NodeSetxattrer    = (*sessionDir)(nil)
	_ gofs.NodeRemovexattrer = (*sessionDir)(nil)
	_ gofs.NodeListxattrer   = (*sessionDir)(nil)
	_ gofs.NodeGetxattrer    = (*rootDir)(nil)
	_ gofs.NodeSetxattrer    = (*rootDir)(nil)
	_ gofs.NodeListxattrer   = (*rootDir)(nil)
)

// Getxattr serves the control attributes without counting as activity:
// 'spoolfs session ls' must not keep sessions alive.
func (n *sessionDir) Getxattr(ctx context.Context, name string, dest []byte) (uint32, syscall.Errno) {
	if !control.Reserved(name) {
		return n.attrs.Getxattr(ctx, name, dest)
	}
	value, ok := n.s.controlValue(name)
	if !ok {
		return 0, control.ErrNoAttr
	}
	return getControl(value, dest)
}

// Listxattr lists the policy attributes (with the owner, if set) but not
// the read-only figures, so that cp -a or tar of a session carries its
// policy to a new session and does not stumble on attributes it cannot
// write back. The figures are read by name.
func (n *sessionDir) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	return listWith(&n.attrs, ctx, dest, control.SessionListed())
}

func (n *sessionDir) Setxattr(ctx context.Context, name string, data []byte, flags uint32) syscall.Errno {
	if !control.Reserved(name) {
		n.active()
		return n.attrs.Setxattr(ctx, name, data, flags)
	}
	return n.s.setControl(ctx, name, string(data))
}

// Removexattr of a policy attribute sets it to none, within the ceilings.
func (n *sessionDir) Removexattr(ctx context.Context, name string) syscall.Errno {
	if !control.Reserved(name) {
		n.active()
		return n.attrs.Removexattr(ctx, name)
	}
	return n.s.setControl(ctx, name, "0")
}

// controlValue returns the value of a control attribute.
func (s *session) controlValue(name string) (string, bool) {
	s.mu.Lock()
	p, pid := s.policy, s.pid
	at, why := s.deadlineLocked()
	s.mu.Unlock()
	switch name {
	case control.AttrTTL:
		return p.TTL.String(), true
	case control.AttrIdle:
		return p.Idle.String(), true
	case control.AttrSize:
		return strconv.FormatInt(p.Bytes, 10), true
	case control.AttrInodes:
		return strconv.FormatInt(p.Inodes, 10), true
	case control.AttrPID:
		return strconv.Itoa(pid), true
	case control.AttrUsage:
		return s.usageJSON(), true
	case control.AttrCreated:
		return control.FormatTime(s.created), true
	case control.AttrExpires:
		switch {
		case why == "":
			return control.Never, true
		case at.IsZero():
			return control.FormatTime(s.fsys.now()), true
		}
		return control.FormatTime(at), true
	case control.AttrReason:
		if why == "" {
			return control.None, true
		}
		return why, true
	}
	return "", false
}

// usageJSON goes through the session's nodes for the RAM/disk split: it
// is asked for by people and scripts, not on the data path. It takes them
// from the session's register, where a file is once however many names it
// has, and where files unlinked but still open, which hold bytes too, are.
// Extended attributes and symlink targets are in RAM: bytes is ram + disk.
func (s *session) usageJSON() string {
	u := s.acct.Usage()
	out := control.SessionUsage{Bytes: u.Bytes, Inodes: u.Inodes, OpenFiles: s.opens.Load()}
	for _, nd := range s.liveNodes() {
		out.RAM += nd.meta().metaCharged.Load()
		if f, ok := nd.(*fileNode); ok {
			if f.data.OnDisk() {
				out.Disk += f.data.Allocated()
			} else {
				out.RAM += f.data.Allocated()
			}
		}
	}
	return marshal(out)
}

// setControl changes policy or acts on the session. Only the owner of the
// session directory or root may; the owner may not go past the mount's
// ceilings, root may.
func (s *session) setControl(ctx context.Context, name, value string) syscall.Errno {
	caller, _ := fuse.FromContext(ctx)
	isRoot := caller == nil || caller.Uid == 0
	s.dir.mu.Lock()
	owner := s.dir.uid
	s.dir.mu.Unlock()
	if !isRoot && caller.Uid != owner {
		return syscall.EPERM
	}
	if s.ended.Load() {
		return syscall.ENOENT
	}
	switch name {
	case control.AttrEnd:
		s.mu.Lock()
		s.endRequest = control.ReasonRemoved
		s.mu.Unlock()
	case control.AttrTouch:
		s.touch()
	case control.AttrPID:
		if errno := s.setOwner(caller, value); errno != 0 {
			return errno
		}
	case control.AttrTTL, control.AttrIdle, control.AttrSize, control.AttrInodes:
		if err := s.setPolicy(name, value, !isRoot); err != nil {
			s.fsys.log.Debug("refused session policy", "attr", name, "value", value, "err", err)
			return refusedValueErrno(err)
		}
	default:
		return syscall.EPERM // figures are read-only; unknown names are reserved
	}
	s.fsys.sessions.schedule(s)
	return 0
}

// setPolicy parses and applies one policy value.
func (s *session) setPolicy(name, value string, capped bool) error {
	ceiling := s.fsys.sessions.policy()
	s.mu.Lock()
	p := s.policy
	s.mu.Unlock()
	var err error
	switch name {
	case control.AttrTTL:
		p.TTL, err = control.ParsePolicyDuration(value, ceiling.TTL, capped)
	case control.AttrIdle:
		p.Idle, err = control.ParsePolicyDuration(value, ceiling.Idle, capped)
	case control.AttrSize:
		p.Bytes, err = control.ParsePolicyCount(value, ceiling.Bytes, capped)
	case control.AttrInodes:
		p.Inodes, err = control.ParsePolicyCount(value, ceiling.Inodes, capped)
	}
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.policy = p
	s.mu.Unlock()
	s.acct.SetLimits(limitsOf(p))
	return nil
}

// Getxattr on the root serves the mount's summary and its users.
func (n *rootDir) Getxattr(ctx context.Context, name string, dest []byte) (uint32, syscall.Errno) {
	switch name {
	case control.AttrStatus:
		return getControl(n.fsys.statusJSON(), dest)
	case control.AttrUsers:
		return getControl(marshal(n.fsys.userUsage()), dest)
	case control.AttrUserLimits:
		return getControl(marshal(n.fsys.userLimits()), dest)
	}
	return n.attrs.Getxattr(ctx, name, dest)
}

// Setxattr on the root: root alone may change the mount's limits live
// (AttrLimits) and give uids limits of their own (AttrUserLimits).
func (n *rootDir) Setxattr(ctx context.Context, name string, data []byte, flags uint32) syscall.Errno {
	if name == control.AttrLimits {
		return n.fsys.setLimitsControl(ctx, string(data))
	}
	if !control.Reserved(name) {
		return n.attrs.Setxattr(ctx, name, data, flags)
	}
	if name != control.AttrUserLimits || callerUID(ctx) != 0 {
		return syscall.EPERM
	}
	limits, err := control.ParseUserLimits(string(data))
	if err != nil {
		n.fsys.log.Debug("refused user limits", "value", string(data), "err", err)
		return syscall.EINVAL
	}
	for uid, l := range limits {
		if l == nil {
			n.fsys.users.SetLimits(uid, nil)
		} else {
			n.fsys.users.SetLimits(uid, &quota.Limits{Bytes: l.Bytes, Inodes: l.Inodes})
		}
	}
	return 0
}

func (n *rootDir) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	return listWith(&n.attrs, ctx, dest, []string{control.AttrStatus, control.AttrUsers, control.AttrUserLimits})
}

// userUsage is every uid that owns something or has limits of its own.
func (f *FS) userUsage() []control.UserUsage {
	out := []control.UserUsage{}
	for _, u := range f.users.List() {
		out = append(out, control.UserUsage{UID: u.UID, Bytes: u.Usage.Bytes, Inodes: u.Usage.Inodes,
			SizeLimit: u.Limits.Bytes, InodesLimit: u.Limits.Inodes, Own: u.Own})
	}
	return out
}

// userLimits is the uids with limits of their own.
func (f *FS) userLimits() control.UserLimits {
	out := control.UserLimits{}
	for _, u := range f.users.List() {
		if u.Own {
			out[strconv.FormatUint(uint64(u.UID), 10)] = &control.UserLimit{Bytes: u.Limits.Bytes, Inodes: u.Limits.Inodes}
		}
	}
	return out
}

func marshal(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func (f *FS) status() control.Status {
	u, lim := f.quota.Usage(), f.quota.Limits()
	ps := f.pool.Stats()
	ud := f.users.Default()
	return control.Status{
		Capacity: lim.Bytes, Used: u.Bytes, Inodes: lim.Inodes, InodesUsed: u.Inodes,
		RAMBudget: f.pool.RAMBudget(), RAMUsed: ps.RAMBytes, DiskUsed: ps.DiskBytes,
		SpillThreshold: f.pool.Threshold(), Spills: ps.Spills, Files: ps.Files,
		SpilledFiles: ps.DiskFiles, Sessions: f.sessions.count(), SessionDefaults: f.sessions.policy(),
		UserDefaults: control.UserLimit{Bytes: ud.Bytes, Inodes: ud.Inodes},
		Transport:    f.transportName(),
	}
}

// transportName is the transport serving the mount: dev until told.
func (f *FS) transportName() string {
	if name := f.transport.Load(); name != nil {
		return *name
	}
	return "dev"
}

// Status is the mount's summary, as user.spoolfs.status reports it.
func (f *FS) Status() control.Status { return f.status() }

func (f *FS) statusJSON() string { return marshal(f.status()) }
