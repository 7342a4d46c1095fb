package control

import (
	"encoding/json"
	"fmt"
	"time"
)

// The JSON schema, one for every document: field names in snake_case;
// durations as Go duration strings ("2h0m0s", "0s" for none), the form
// user.spoolfs.ttl and user.spoolfs.idle hold and every duration flag
// and attribute accepts back; times in RFC 3339 (UTC); sizes in bytes and
// counts as plain numbers, 0 for none. README.md lists the documents.

// SessionPolicy is a session's lifetime and limits; a zero field means none.
// The mount's policy is both the default for new sessions and the ceiling
// that a session's owner may not raise its own above.
type SessionPolicy struct {
	TTL    time.Duration // age at which the session ends
	Idle   time.Duration // time without activity after which it ends
	Bytes  int64         // byte quota (EDQUOT past it)
	Inodes int64         // inode quota
}

// sessionPolicyJSON is SessionPolicy on the wire, named as SessionInfo
// names a session's own policy.
type sessionPolicyJSON struct {
	TTL    string `json:"ttl"`
	Idle   string `json:"idle"`
	Bytes  int64  `json:"size_limit"`
	Inodes int64  `json:"inodes_limit"`
}

func (p SessionPolicy) MarshalJSON() ([]byte, error) {
	return json.Marshal(sessionPolicyJSON{TTL: p.TTL.String(), Idle: p.Idle.String(), Bytes: p.Bytes, Inodes: p.Inodes})
}

func (p *SessionPolicy) UnmarshalJSON(b []byte) error {
	var w sessionPolicyJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	ttl, err := ParseDuration(w.TTL)
	if err != nil {
		return fmt.Errorf("ttl %q: %v", w.TTL, err)
	}
	idle, err := ParseDuration(w.Idle)
	if err != nil {
		return fmt.Errorf("idle %q: %v", w.Idle, err)
	}
	*p = SessionPolicy{TTL: ttl, Idle: idle, Bytes: w.Bytes, Inodes: w.Inodes}
	return nil
}

// Status is the mount's summary, as AttrStatus reports it.
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
	UserDefaults    UserLimit     `json:"user_defaults"` // what every uid but 0 may own
	// Transport is how the kernel's requests reach the daemon: "dev"
	// (reads and writes of /dev/fuse) or "uring" (FUSE-over-io_uring).
	Transport string `json:"transport"`
}

// UserLimit is what one uid may own at most; a zero field is unlimited.
type UserLimit struct {
	Bytes  int64 `json:"size_limit"`
	Inodes int64 `json:"inodes_limit"`
}

// UserLimits is AttrUserLimits: the uids (in decimal) with limits of their
// own. Written, a null takes a uid's own limits away.
type UserLimits map[string]*UserLimit

// UserUsage is one uid in AttrUsers: what its files hold and the limits
// that apply, its own or the default (Own says which).
type UserUsage struct {
	UID         uint32 `json:"uid"`
	Bytes       int64  `json:"bytes"`
	Inodes      int64  `json:"inodes"`
	SizeLimit   int64  `json:"size_limit"`
	InodesLimit int64  `json:"inodes_limit"`
	Own         bool   `json:"own_limits"`
}

// SessionUsage is what AttrUsage reports: the bytes and inodes charged to
// the session, the bytes split by where they are (ram + disk = bytes), and
// its open files.
type SessionUsage struct {
	Bytes     int64 `json:"bytes"`
	Inodes    int64 `json:"inodes"`
	RAM       int64 `json:"ram"`
	Disk      int64 `json:"disk"`
	OpenFiles int64 `json:"open_files"`
}

// SessionInfo is one session as 'spoolfs session ls --json' prints it: its
// attributes, read one by one, and the owner of its directory.
type SessionInfo struct {
	Name    string       `json:"name"`
	Path    string       `json:"path"`
	Owner   uint32       `json:"uid"`
	Created time.Time    `json:"created"`
	Expires string       `json:"expires"` // as AttrExpires: FormatTime or Never
	Reason  string       `json:"ends_by"` // as AttrReason
	TTL     string       `json:"ttl"`     // as AttrTTL
	Idle    string       `json:"idle"`    // as AttrIdle
	Size    int64        `json:"size_limit"`
	Inodes  int64        `json:"inodes_limit"`
	PID     int          `json:"pid"`
	Usage   SessionUsage `json:"usage"`
}

// StatusReport is what 'spoolfs status --json' prints: the mount's Status
// (absent when the path is a session bound without its mount) and its
// sessions.
type StatusReport struct {
	Mount    *Status        `json:"mount,omitempty"`
	Users    []UserUsage    `json:"users,omitempty"` // uids that own something or have own limits
	Sessions []*SessionInfo `json:"sessions"`
}
