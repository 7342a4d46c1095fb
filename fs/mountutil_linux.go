package fs

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// fusectlDir is where the kernel exposes each FUSE connection.
const fusectlDir = "/sys/fs/fuse/connections"

// ConnectionID returns the kernel's number for the FUSE connection mounted
// at dir: the minor number of its device.
func ConnectionID(dir string) (uint32, error) {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return 0, err
	}
	return unix.Minor(st.Dev), nil
}

// Abort cuts the FUSE connection id: every pending and future request fails
// and the server's loop ends. It is the way out of a hung mount, and of one
// that stays busy after a lazy unmount.
func Abort(id uint32) error {
	if err := ensureFusectl(); err != nil {
		return err
	}
	path := fmt.Sprintf("%s/%d/abort", fusectlDir, id)
	return os.WriteFile(path, []byte("1"), 0)
}

func ensureFusectl() error {
	if _, err := os.Stat(fusectlDir + "/"); err == nil {
		if entries, _ := os.ReadDir(fusectlDir); len(entries) > 0 || isMounted(fusectlDir) {
			return nil
		}
	}
	err := unix.Mount("fusectl", fusectlDir, "fusectl", 0, "")
	if err != nil && !errors.Is(err, unix.EBUSY) {
		return fmt.Errorf("mount fusectl: %w", err)
	}
	return nil
}

func isMounted(dir string) bool {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 4 && unescapeMount(f[4]) == dir {
			return true
		}
	}
	return false
}

// unescapeMount undoes the octal escapes of /proc/self/mountinfo.
func unescapeMount(s string) string {
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

// IsMounted reports whether dir is a mount point, by /proc/self/mountinfo,
// without touching dir itself (which could hang on a stuck FUSE server).
func IsMounted(dir string) bool { return isMounted(dir) }

// IsDeadMountError says whether err is what a FUSE mount whose server is
// gone answers: ENOTCONN ("Transport endpoint is not connected"), or
// ECONNABORTED once its connection was aborted.
func IsDeadMountError(err error) bool {
	return errors.Is(err, syscall.ENOTCONN) || errors.Is(err, syscall.ECONNABORTED)
}

// ClearDeadMount detaches a FUSE mount at dir whose server is gone, so that
// dir can be mounted again. It does nothing to a live mount or a plain
// directory.
func ClearDeadMount(dir string) error {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); !IsDeadMountError(err) {
		return nil
	}
	if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
		return fmt.Errorf("clear dead mount %s: %w", dir, err)
	}
	return nil
}

// Unmount unmounts dir; if it is busy, it detaches it and aborts its
// connection so that open files fail instead of keeping the daemon alive,
// which is what a temporary filesystem being torn down must do.
func Unmount(dir string) error {
	err := unix.Unmount(dir, 0)
	if err == nil || errors.Is(err, unix.EINVAL) { // EINVAL: not mounted
		return nil
	}
	id, idErr := ConnectionID(dir)
	if derr := unix.Unmount(dir, unix.MNT_DETACH); derr != nil {
		return fmt.Errorf("unmount %s: %w", dir, derr)
	}
	if idErr == nil {
		return Abort(id)
	}
	return nil
}

// SetReadahead sets the kernel's readahead for the mount at dir, in KiB.
// FUSE mounts start at 128 KiB, which splits sequential reads into 128 KiB
// requests; 1024 KiB (the most one request can carry here) makes cold
// sequential reads faster.
func SetReadahead(dir string, kb int) error {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return err
	}
	path := fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", unix.Major(st.Dev), unix.Minor(st.Dev))
	return os.WriteFile(path, []byte(strconv.Itoa(kb)), 0)
}
