package mounts

import (
	"os"
	"syscall"
	"testing"
)

func TestParseMountinfo(t *testing.T) {
	const mountinfo = `22 1 0:21 / /tmp rw,nosuid shared:5 - tmpfs tmpfs rw
40 22 0:40 / /tmp/m rw,nosuid,nodev,relatime - fuse.spoolfs spoolfs rw,user_id=0
41 40 0:41 / /tmp/m rw,nosuid,nodev,relatime shared:7 master:2 - fuse.spoolfs spoolfs rw,user_id=0
42 41 0:42 / /tmp/m rw - tmpfs tmpfs rw
43 22 0:43 / /tmp/with\040space rw - fuse.spoolfs spoolfs rw
44 22 0:44 / /tmp/mm rw - tmpfs tmpfs rw
`
	mounts := parseMountinfo(mountinfo, "/tmp/m")
	if len(mounts) != 3 {
		t.Fatalf("%d mounts on /tmp/m, want 3: %+v", len(mounts), mounts)
	}
	if mounts[1].fsType != "fuse.spoolfs" {
		t.Errorf("type after optional fields: %q, want fuse.spoolfs", mounts[1].fsType)
	}
	if top, ok := topMount(mounts); !ok || top.id != "42" || top.fsType != "tmpfs" {
		t.Errorf("top of /tmp/m: %+v, want mount 42, tmpfs", top)
	}
	// The order of lines does not decide which mount is on top.
	reversed := []mountEntry{mounts[2], mounts[1], mounts[0]}
	if top, _ := topMount(reversed); top.id != "42" {
		t.Errorf("top of reversed lines: %+v, want mount 42", top)
	}
	if got := parseMountinfo(mountinfo, "/tmp/with space"); len(got) != 1 || got[0].fsType != "fuse.spoolfs" {
		t.Errorf("escaped mount point: %+v", got)
	}
	if _, ok := topMount(parseMountinfo(mountinfo, "/tmp/none")); ok {
		t.Error("a top mount on a directory with none")
	}
	if got := parseMountinfo("1 2 3 4\n", "/x"); got != nil {
		t.Errorf("short line: %+v", got)
	}
}

// What a dead FUSE mount answers is told apart from what a live one may:
// over io_uring, a request handed to a ring whose daemon has just died
// ends with ECANCELED until the kernel has torn the connection down.
func TestIsDeadMountError(t *testing.T) {
	for _, c := range []struct {
		err  error
		dead bool
	}{
		{syscall.ENOTCONN, true}, {syscall.ECONNABORTED, true}, {syscall.ECANCELED, true},
		{&os.PathError{Op: "stat", Path: "/x", Err: syscall.ECANCELED}, true},
		{syscall.EIO, false}, {syscall.ENOENT, false}, {nil, false},
	} {
		if got := IsDeadMountError(c.err); got != c.dead {
			t.Errorf("IsDeadMountError(%v) = %v, want %v", c.err, got, c.dead)
		}
	}
}
