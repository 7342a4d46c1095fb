package control

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// ErrCeiling refuses a policy value that a capped caller (a session's
// owner, not root) may not set: above the mount's ceiling, or none where
// the mount has one. Every other parse error is an invalid value.
var ErrCeiling = errors.New("above the mount's ceiling")

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

// errEmpty refuses a policy value with nothing in it.
var errEmpty = errors.New(`empty: write 0 or "none" for none`)

// ParsePolicyDuration reads a value written to AttrTTL or AttrIdle: a
// duration as ParseDuration reads it, or None for none. Nothing (an empty
// or blank value) is an error, not none: an empty shell variable must not
// make a session unlimited. With capped, none and values above a non-zero
// ceiling are ErrCeiling.
func ParsePolicyDuration(value string, ceiling time.Duration, capped bool) (time.Duration, error) {
	value = strings.TrimSpace(value)
	if value == "" {
		return 0, errEmpty
	}
	var d time.Duration
	if value != None {
		var err error
		if d, err = ParseDuration(value); err != nil {
			return 0, fmt.Errorf("%q: %v", value, err)
		}
	}
	if capped && ceiling > 0 && (d == 0 || d > ceiling) {
		return 0, ErrCeiling
	}
	return d, nil
}

// ParsePolicyCount reads a value written to AttrSize or AttrInodes: a
// decimal number, 0 or None for none; nothing is an error, as for
// ParsePolicyDuration. Never negative, not even "-0". With capped, none
// and values above a non-zero ceiling are ErrCeiling.
func ParsePolicyCount(value string, ceiling int64, capped bool) (int64, error) {
	value = strings.TrimSpace(value)
	if value == "" {
		return 0, errEmpty
	}
	var n int64
	if value != None {
		var err error
		if n, err = strconv.ParseInt(value, 10, 64); err != nil || n < 0 || strings.HasPrefix(value, "-") {
			return 0, fmt.Errorf("%q is not a non-negative whole number", value)
		}
	}
	if capped && ceiling > 0 && (n == 0 || n > ceiling) {
		return 0, ErrCeiling
	}
	return n, nil
}

// MaxAncestor is the most generations an owner value may go up.
const MaxAncestor = 1024

// ancestorPrefix starts an owner value that names the writer's ancestor.
const ancestorPrefix = "ancestor:"

// Owner is a value written to AttrPID. A PID means something only in a
// PID namespace, so the value either names a PID in the daemon's
// namespace, or the writer's Nth ancestor (0: the writer itself), which
// the daemon finds from the caller it sees, in any namespace. The zero
// Owner is none.
type Owner struct {
	PID      int  // > 0: this process, in the daemon's namespace
	Ancestor int  // with OfCaller: generations up from the writer
	OfCaller bool // Ancestor, not PID, names the owner
}

// FormatAncestor is the owner value that names the writer's nth ancestor.
func FormatAncestor(n int) string { return ancestorPrefix + strconv.Itoa(n) }

// ParseOwner reads a value written to AttrPID: "0" or None for none, a
// PID, or "ancestor:N" (FormatAncestor) with N from 0 to MaxAncestor.
func ParseOwner(value string) (Owner, error) {
	value = strings.TrimSpace(value)
	if value == "0" || value == None {
		return Owner{}, nil
	}
	if rest, ok := strings.CutPrefix(value, ancestorPrefix); ok {
		n, err := strconv.Atoi(rest)
		if err != nil || n < 0 || n > MaxAncestor {
			return Owner{}, fmt.Errorf("ancestor:N needs N between 0 and %d", MaxAncestor)
		}
		return Owner{Ancestor: n, OfCaller: true}, nil
	}
	pid, err := strconv.Atoi(value)
	if err != nil || pid <= 0 {
		return Owner{}, errors.New("not a PID")
	}
	return Owner{PID: pid}, nil
}

// ParseUserLimits reads a value written to AttrUserLimits: a JSON object
// from decimal uids to limits, or to null to take a uid's own limits away.
// Limits are byte and inode counts, never negative.
func ParseUserLimits(value string) (map[uint32]*UserLimit, error) {
	var in UserLimits
	dec := json.NewDecoder(strings.NewReader(value))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return nil, fmt.Errorf("user limits: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("user limits: more than one JSON value")
	}
	if in == nil {
		return nil, errors.New(`user limits: want a JSON object such as {"1000":{"size_limit":1048576,"inodes_limit":100}}`)
	}
	out := make(map[uint32]*UserLimit, len(in))
	for key, l := range in {
		uid, err := strconv.ParseUint(key, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("user limits: uid %q: not a decimal uid", key)
		}
		if l != nil && (l.Bytes < 0 || l.Inodes < 0) {
			return nil, fmt.Errorf("user limits: uid %d: negative limit", uid)
		}
		out[uint32(uid)] = l
	}
	return out, nil
}
