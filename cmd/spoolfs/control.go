package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/spoolfs/spoolfs/fs/control"
)

// The CLI talks to a mount only through the extended attributes the
// daemon serves on the root and on session directories (package control),
// so it works from inside a container that sees nothing but the mount or
// one session.

// getControl reads the control attribute name of path.
func getControl(path, name string) (string, error) {
	buf := make([]byte, 4096)
	for {
		n, err := unix.Getxattr(path, name, buf)
		if errors.Is(err, unix.ERANGE) {
			buf = make([]byte, 2*len(buf))
			continue
		}
		if err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	}
}

// setControl writes the control attribute name of path; an error names
// the attribute as the user knows it, without the prefix (ttl=5x).
func setControl(path, name, value string) error {
	err := unix.Setxattr(path, name, []byte(value), 0)
	if err != nil {
		return fmt.Errorf("%s=%s: %w", strings.TrimPrefix(name, control.Prefix), value, describeControlError(err))
	}
	return nil
}

func describeControlError(err error) error {
	switch {
	case errors.Is(err, unix.EPERM):
		return errors.New("not allowed (only the session's owner or root, and within the mount's ceilings)")
	case errors.Is(err, unix.EINVAL):
		return errors.New("invalid value")
	case errors.Is(err, unix.ESRCH):
		return errors.New("no such process")
	case errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, control.ErrNoAttr):
		return errors.New("not a spoolfs session")
	}
	return err
}

// kindOf says whether path is a spoolfs root, a session, or neither.
func kindOf(path string) string {
	if _, err := getControl(path, control.AttrStatus); err == nil {
		return "root"
	}
	if _, err := getControl(path, control.AttrCreated); err == nil {
		return "session"
	}
	return ""
}

// readSession reads one session's figures through its attributes.
func readSession(path string) (*control.SessionInfo, error) {
	s := &control.SessionInfo{Name: filepath.Base(path), Path: path}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return nil, err
	}
	s.Owner = st.Uid
	var created, usage, size, inodes, pid string
	for name, dst := range map[string]*string{
		control.AttrExpires: &s.Expires, control.AttrReason: &s.Reason, control.AttrTTL: &s.TTL, control.AttrIdle: &s.Idle,
		control.AttrCreated: &created, control.AttrUsage: &usage, control.AttrSize: &size, control.AttrInodes: &inodes, control.AttrPID: &pid,
	} {
		v, err := getControl(path, name)
		if err != nil {
			return nil, err
		}
		*dst = v
	}
	s.Created, _ = time.Parse(control.TimeFormat, created)
	fmt.Sscan(size, &s.Size)
	fmt.Sscan(inodes, &s.Inodes)
	fmt.Sscan(pid, &s.PID)
	if err := json.Unmarshal([]byte(usage), &s.Usage); err != nil {
		return nil, fmt.Errorf("%s: bad usage figures: %v", path, err)
	}
	return s, nil
}

// listSessions reads every session of a mount root, or the one session
// path is (a container that sees only its own session).
func listSessions(path string) ([]*control.SessionInfo, error) {
	switch kindOf(path) {
	case "session":
		s, err := readSession(path)
		if err != nil {
			return nil, err
		}
		return []*control.SessionInfo{s}, nil
	case "root":
	default:
		return nil, fmt.Errorf("%s is not a spoolfs mount or session", path)
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, err
	}
	var out []*control.SessionInfo
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		s, err := readSession(filepath.Join(path, e.Name()))
		if err != nil {
			continue // ended while we listed
		}
		out = append(out, s)
	}
	return out, nil
}

// timeLeft renders an expiry as a duration from now.
func timeLeft(expires string, now time.Time) string {
	if expires == control.Never || expires == "" {
		return "never"
	}
	t, err := time.Parse(control.TimeFormat, expires)
	if err != nil {
		return expires
	}
	return shortDuration(t.Sub(now))
}

// shortDuration renders d to the second in its two largest units, the
// second left out when zero: 45s, 9m05s, 10m, 2h30m, 1h, 3d4h.
func shortDuration(d time.Duration) string {
	d = d.Round(time.Second)
	if d <= 0 {
		return "now"
	}
	days, h := int64(d/(24*time.Hour)), int64(d/time.Hour)%24
	m, s := int64(d/time.Minute)%60, int64(d/time.Second)%60
	two := func(a int64, ua string, b int64, ub, bfmt string) string {
		if b == 0 {
			return fmt.Sprintf("%d%s", a, ua)
		}
		return fmt.Sprintf("%d%s"+bfmt+"%s", a, ua, b, ub)
	}
	switch {
	case days > 0:
		return two(days, "d", h, "h", "%d")
	case h > 0:
		return two(h, "h", m, "m", "%02d")
	case m > 0:
		return two(m, "m", s, "s", "%02d")
	}
	return fmt.Sprintf("%ds", s)
}
