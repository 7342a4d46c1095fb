// Package mounts owns what spoolfs does with the kernel's mount table and
// FUSE connections, by path and by connection number, never through a
// node: whether a directory is a mount point (read from mountinfo, without
// touching the directory, which could hang on a stuck server), whether a
// spoolfs there is alive (statfs(2), which the kernel never answers from
// its cache), clearing dead mounts, unmounting, and cutting a connection
// off through fusectl.
//
// A daemon unmounts only its own mount (UnmountOwn): a filesystem mounted
// over it later is somebody else's.
package mounts

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// FSName is the name spoolfs mounts under: mountinfo shows its type as
// "fuse." plus this.
const FSName = "spoolfs"

// ErrDeadMount is what CheckMountpoint says of a directory with a dead
// spoolfs on top, one whose daemon is gone: ClearDeadMounts takes it off.
var ErrDeadMount = errors.New("a spoolfs mount whose daemon is gone")

// ErrCovered: another filesystem was mounted over ours; see UnmountOwn.
var ErrCovered = errors.New("another filesystem is mounted over it")

// MountedError says why a directory cannot be mounted on: something other
// than a dead spoolfs is mounted there.
type MountedError struct {
	Dir    string
	FSType string // as mountinfo shows it: "fuse.spoolfs", "tmpfs", ...
	Hung   bool   // a spoolfs that did not answer in time
}

func (e *MountedError) Error() string {
	switch {
	case e.Hung:
		return fmt.Sprintf("%s is a spoolfs mount that does not answer ('spoolfs umount -l %s' cuts it off)", e.Dir, e.Dir)
	case e.FSType == "fuse."+FSName:
		return fmt.Sprintf("%s is already mounted (spoolfs; 'spoolfs umount %s' first)", e.Dir, e.Dir)
	}
	return fmt.Sprintf("%s has a %s filesystem mounted on it", e.Dir, e.FSType)
}

// maxStacked bounds how many dead mounts ClearDeadMounts takes off one
// directory, so that a mount that keeps coming back cannot loop it forever.
const maxStacked = 64

// ClearDeadMounts detaches the dead spoolfs mounts stacked on dir, topmost
// first, so that dir can be mounted on again (older builds stacked a new
// mount on a dead one). It stops at the first mount that is not a dead
// spoolfs and returns it as a *MountedError; nil means dir is left a plain
// directory.
func ClearDeadMounts(dir string) error {
	for range maxStacked {
		err := CheckMountpoint(dir)
		if !errors.Is(err, ErrDeadMount) {
			return err
		}
		if err := detach(dir); err != nil {
			return fmt.Errorf("clear dead mount %s: %w", dir, err)
		}
	}
	return fmt.Errorf("%s: more than %d dead mounts stacked", dir, maxStacked)
}

// UnescapeMountPath undoes the octal escapes (\040 for a space) that
// /proc/self/mountinfo and fstab write in paths.
func UnescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
