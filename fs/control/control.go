// Package control is the wire format of spoolfs's control surface: the
// user.spoolfs.* extended attributes that the daemon serves on session
// directories and on the root, and that the CLI reads and writes. It owns
// the attribute names, the formats of their values (the policy parsers and
// their errors, times, the owner's "ancestor:N"), the JSON types the daemon
// and the CLI emit, and the errno that means "no such attribute".
//
// It knows nothing of FUSE or of nodes: package fs serves these names from
// its nodes, cmd/spoolfs and the integration tests speak them through
// getxattr(2) and setxattr(2). Keeping both sides on the same declarations
// is what lets them never disagree on a name, a value or a JSON field.
//
// # Invariants
//
//   - Every name of the surface starts with Prefix, and every name that
//     starts with Prefix is reserved (Reserved): a user can neither set
//     nor read an ordinary attribute of that name on a session or the root.
//   - The JSON of Status, SessionPolicy, SessionUsage, SessionInfo and
//     StatusReport is what scripts read: one schema (json.go), field
//     names and forms that change only on purpose (json_test.go pins
//     them, README.md lists them).
//   - A policy parser never returns a negative value, never a value above
//     the ceiling for a capped caller, and never 0 ("none") unless "none",
//     nothing, or a zero was written.
package control

import (
	"strings"
	"time"
)

// Prefix starts the name of every control attribute.
const Prefix = "user.spoolfs."

// The attributes of a session directory.
const (
	// Policy, readable and writable by the session's owner and root.
	AttrTTL    = Prefix + "ttl"    // duration (ParseDuration); "0s": none
	AttrIdle   = Prefix + "idle"   // duration; "0s": none
	AttrSize   = Prefix + "size"   // bytes; 0: none
	AttrInodes = Prefix + "inodes" // count; 0: none
	AttrPID    = Prefix + "pid"    // owning process (ParseOwner)

	// Figures, read-only.
	AttrUsage   = Prefix + "usage"   // JSON: SessionUsage
	AttrExpires = Prefix + "expires" // FormatTime, or Never
	AttrCreated = Prefix + "created" // FormatTime
	AttrReason  = Prefix + "reason"  // what will end it first: a Reason*, or None

	// Actions, write-only; the value is ignored.
	AttrEnd   = Prefix + "end"   // end the session now
	AttrTouch = Prefix + "touch" // reset the idle timer
)

// The attributes of the root.
const (
	// AttrStatus is read-only: JSON, Status.
	AttrStatus = Prefix + "status"
	// AttrLimits is write-only, and root's alone: it changes the mount's
	// limits live, as mount -o remount does. Its value is a list of the
	// mount's options as -o takes them, size=8G,ram=25%,spill_threshold=4M:
	// only size, inodes, ram, spill_threshold and session_ttl, _idle,
	// _size and _inodes (LiveOptions), each value as at mount, a
	// percentage resolved as at mount. What is not named stays as it is.
	// Refusals: EINVAL for a bad value, ENOSPC for a size or inodes below
	// what is in use, EBUSY for a RAM budget below what cannot move to
	// disk; nothing changes then.
	AttrLimits = Prefix + "limits"
	AttrUsers  = Prefix + "users" // JSON, []UserUsage; read-only
	// AttrUserLimits is the uids with limits of their own: JSON, UserLimits.
	// Root writes it; what it writes is merged (ParseUserLimits).
	AttrUserLimits = Prefix + "user_limits"
)

// LiveOptions are the mount options that AttrLimits changes, as -o spells
// them.
func LiveOptions() []string {
	return []string{"size", "inodes", "ram", "spill_threshold", "session_ttl", "session_idle", "session_size", "session_inodes"}
}

// Reserved says whether name belongs to the control surface.
func Reserved(name string) bool { return strings.HasPrefix(name, Prefix) }

// SessionListed are the control attributes listxattr shows on a session:
// the policy, which cp -a or tar carries to a copy, but not the pid, which
// names a process of the daemon's namespace that a copy should not
// inherit, nor the read-only figures, which a copy could not write back.
func SessionListed() []string { return []string{AttrTTL, AttrIdle, AttrSize, AttrInodes} }

// Values of AttrReason (and of the "reason" of the daemon's log and
// metrics): why a session ends, or will.
const (
	ReasonTTL     = "ttl"
	ReasonIdle    = "idle"
	ReasonOwner   = "owner-exited"
	ReasonRemoved = "removed"
)

const (
	// None is AttrReason's value when nothing will end the session, and
	// what a policy attribute may be set to for no limit.
	None = "none"
	// Never is AttrExpires's value when nothing will end the session.
	Never = "never"
)

// TimeFormat is the format of AttrCreated and AttrExpires.
const TimeFormat = time.RFC3339Nano

// FormatTime renders t as AttrCreated and AttrExpires hold it, in UTC.
func FormatTime(t time.Time) string { return t.UTC().Format(TimeFormat) }
