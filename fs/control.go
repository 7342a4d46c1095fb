package fs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// The control surface: reserved extended attributes on session directories
// and on the root. The CLI uses nothing else, so it works from inside a
// container that sees only a bind-mounted session.
const (
	ctlPrefix = "user.spoolfs."

	// Policy of a session, readable and writable by its owner and root.
	ctlTTL    = ctlPrefix + "ttl"    // Go duration; "0s": none
	ctlIdle   = ctlPrefix + "idle"   // Go duration; "0s": none
	ctlSize   = ctlPrefix + "size"   // bytes; 0: none
	ctlInodes = ctlPrefix + "inodes" // count; 0: none
	ctlPID    = ctlPrefix + "pid"    // owning process; "ancestor:N" resolves from the caller

	// Figures of a session, read-only.
	ctlUsage   = ctlPrefix + "usage"   // JSON: bytes, inodes, ram, disk, open_files
	ctlExpires = ctlPrefix + "expires" // RFC 3339, or "never"
	ctlCreated = ctlPrefix + "created" // RFC 3339
	ctlReason  = ctlPrefix + "reason"  // what will end it first: ttl, idle, owner-exited, or none

	// Actions on a session, write-only.
	ctlEnd   = ctlPrefix + "end"   // end the session now
	ctlTouch = ctlPrefix + "touch" // reset the idle timer

	// The mount's summary on the root, read-only.
	ctlStatus = ctlPrefix + "status" // JSON
)

var (
	// sessionListedNames: not the pid, which names a process of the
	// daemon's namespace that a copy should not inherit.
	sessionListedNames  = []string{ctlTTL, ctlIdle, ctlSize, ctlInodes}
	errCeiling          = errors.New("above the mount's ceiling")
	errNotSameNamespace = errors.New("pid is from another PID namespace; use ancestor:N")
)

func isControl(name string) bool { return strings.HasPrefix(name, ctlPrefix) }

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
	if !isControl(name) {
		return n.attrs.Getxattr(ctx, name, dest)
	}
	value, ok := n.s.control(name)
	if !ok {
		return 0, errNoAttr
	}
	return getControl(value, dest)
}

// Listxattr lists the policy attributes (with the owner, if set) but not
// the read-only figures, so that cp -a or tar of a session carries its
// policy to a new session and does not stumble on attributes it cannot
// write back. The figures are read by name.
func (n *sessionDir) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	return listWith(&n.attrs, ctx, dest, sessionListedNames)
}

func (n *sessionDir) Setxattr(ctx context.Context, name string, data []byte, flags uint32) syscall.Errno {
	if !isControl(name) {
		n.active()
		return n.attrs.Setxattr(ctx, name, data, flags)
	}
	return n.s.setControl(ctx, name, string(data))
}

// Removexattr of a policy attribute sets it to "none", within the ceilings.
func (n *sessionDir) Removexattr(ctx context.Context, name string) syscall.Errno {
	if !isControl(name) {
		n.active()
		return n.attrs.Removexattr(ctx, name)
	}
	return n.s.setControl(ctx, name, "0")
}

// control returns the value of a control attribute.
func (s *session) control(name string) (string, bool) {
	s.mu.Lock()
	p, pid := s.policy, s.pid
	at, why := s.deadlineLocked()
	s.mu.Unlock()
	switch name {
	case ctlTTL:
		return p.TTL.String(), true
	case ctlIdle:
		return p.Idle.String(), true
	case ctlSize:
		return strconv.FormatInt(p.Bytes, 10), true
	case ctlInodes:
		return strconv.FormatInt(p.Inodes, 10), true
	case ctlPID:
		return strconv.Itoa(pid), true
	case ctlUsage:
		return s.usageJSON(), true
	case ctlCreated:
		return s.created.UTC().Format(time.RFC3339Nano), true
	case ctlExpires:
		switch {
		case why == "":
			return "never", true
		case at.IsZero():
			return s.fsys.now().UTC().Format(time.RFC3339Nano), true
		}
		return at.UTC().Format(time.RFC3339Nano), true
	case ctlReason:
		if why == "" {
			return "none", true
		}
		return why, true
	}
	return "", false
}

// sessionUsage is what user.spoolfs.usage reports.
type sessionUsage struct {
	Bytes     int64 `json:"bytes"`
	Inodes    int64 `json:"inodes"`
	RAM       int64 `json:"ram"`
	Disk      int64 `json:"disk"`
	OpenFiles int64 `json:"open_files"`
}

// usageJSON goes through the session's nodes for the RAM/disk split: it
// is asked for by people and scripts, not on the data path. It takes them
// from the session's register, where a file is once however many names it
// has, and where files unlinked but still open, which hold bytes too, are.
// Extended attributes and symlink targets are in RAM: bytes is ram + disk.
func (s *session) usageJSON() string {
	u := s.acct.Usage()
	out := sessionUsage{Bytes: u.Bytes, Inodes: u.Inodes, OpenFiles: s.opens.Load()}
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
	b, _ := json.Marshal(out)
	return string(b)
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
	case ctlEnd:
		s.mu.Lock()
		s.endRequest = reasonRemoved
		s.mu.Unlock()
	case ctlTouch:
		s.touch()
	case ctlPID:
		if errno := s.setOwner(caller, value); errno != 0 {
			return errno
		}
	case ctlTTL, ctlIdle, ctlSize, ctlInodes:
		if err := s.setPolicy(name, value, !isRoot); err != nil {
			s.fsys.log.Debug("refused session policy", "attr", name, "value", value, "err", err)
			if errors.Is(err, errCeiling) {
				return syscall.EPERM
			}
			return syscall.EINVAL
		}
	default:
		return syscall.EPERM // figures are read-only; unknown names are reserved
	}
	s.fsys.sessions.schedule(s)
	return 0
}

// setPolicy parses and applies one policy value.
func (s *session) setPolicy(name, value string, capped bool) error {
	ceiling := s.fsys.sessions.defaults
	s.mu.Lock()
	p := s.policy
	s.mu.Unlock()
	var err error
	switch name {
	case ctlTTL:
		p.TTL, err = parsePolicyDuration(value, ceiling.TTL, capped)
	case ctlIdle:
		p.Idle, err = parsePolicyDuration(value, ceiling.Idle, capped)
	case ctlSize:
		p.Bytes, err = parsePolicyCount(value, ceiling.Bytes, capped)
	case ctlInodes:
		p.Inodes, err = parsePolicyCount(value, ceiling.Inodes, capped)
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

// ParseDuration reads a session's ttl or idle, as the daemon and the
// CLI's duration flags do: a Go duration ("90s", "2h", "0"). It refuses a
// negative value (even "-0s") and one that is not zero but rounds down to
// nothing ("0.1ns"): zero means "none", which is never what such a value
// asked for.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "-") {
		return 0, errors.New("a duration cannot be negative")
	}
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		return 0, errors.New("not a duration")
	case d == 0 && strings.ContainsAny(s, "123456789"):
		return 0, errors.New("less than 1ns")
	}
	return d, nil
}

// parsePolicyDuration reads a ttl or idle value: a duration as
// ParseDuration reads it, or "none" (or nothing) for none. With capped,
// none and values above a non-zero ceiling are refused.
func parsePolicyDuration(value string, ceiling time.Duration, capped bool) (time.Duration, error) {
	value = strings.TrimSpace(value)
	var d time.Duration
	if value != "none" && value != "" {
		var err error
		if d, err = ParseDuration(value); err != nil {
			return 0, fmt.Errorf("%q: %v", value, err)
		}
	}
	if capped && ceiling > 0 && (d == 0 || d > ceiling) {
		return 0, errCeiling
	}
	return d, nil
}

// parsePolicyCount reads a size or inodes value: a decimal number, 0 or
// "none" for none. Never negative, not even "-0".
func parsePolicyCount(value string, ceiling int64, capped bool) (int64, error) {
	value = strings.TrimSpace(value)
	var n int64
	if value != "none" && value != "" {
		var err error
		if n, err = strconv.ParseInt(value, 10, 64); err != nil || n < 0 || strings.HasPrefix(value, "-") {
			return 0, fmt.Errorf("%q is not a non-negative whole number", value)
		}
	}
	if capped && ceiling > 0 && (n == 0 || n > ceiling) {
		return 0, errCeiling
	}
	return n, nil
}

// Getxattr on the root serves the mount's summary.
func (n *rootDir) Getxattr(ctx context.Context, name string, dest []byte) (uint32, syscall.Errno) {
	if name != ctlStatus {
		return n.attrs.Getxattr(ctx, name, dest)
	}
	return getControl(n.fsys.statusJSON(), dest)
}

func (n *rootDir) Setxattr(ctx context.Context, name string, data []byte, flags uint32) syscall.Errno {
	if isControl(name) {
		return syscall.EPERM
	}
	return n.attrs.Setxattr(ctx, name, data, flags)
}

func (n *rootDir) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	return listWith(&n.attrs, ctx, dest, []string{ctlStatus})
}

// Status is the mount's summary, as user.spoolfs.status reports it.
type Status struct {
	Capacity        int64         `json:"capacity"`
	Used            int64         `json:"used"`
	Inodes          int64         `json:"inodes"`
	InodesUsed      int64         `json:"inodes_used"`
	RAMBudget       int64         `json:"ram_budget"`
	RAMUsed         int64         `json:"ram_used"`
	DiskUsed        int64         `json:"disk_used"`
	SpillThreshold  int64         `json:"spill_threshold"`
	Spills          int64         `json:"spills"`
	Files           int64         `json:"files"`
	SpilledFiles    int64         `json:"spilled_files"`
	Sessions        int           `json:"sessions"`
	SessionDefaults SessionPolicy `json:"session_defaults"`
}

func (f *FS) status() Status {
	u, lim := f.quota.Usage(), f.quota.Limits()
	ps := f.pool.Stats()
	return Status{
		Capacity: lim.Bytes, Used: u.Bytes, Inodes: lim.Inodes, InodesUsed: u.Inodes,
		RAMBudget: f.pool.RAMBudget(), RAMUsed: ps.RAMBytes, DiskUsed: ps.DiskBytes,
		SpillThreshold: f.pool.Threshold(), Spills: ps.Spills, Files: ps.Files,
		SpilledFiles: ps.DiskFiles, Sessions: f.sessions.count(), SessionDefaults: f.sessions.defaults,
	}
}

// Status is the mount's summary, as user.spoolfs.status reports it.
func (f *FS) Status() Status { return f.status() }

func (f *FS) statusJSON() string {
	b, _ := json.Marshal(f.status())
	return string(b)
}
