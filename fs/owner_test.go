package fs

import (
	"errors"
	"os"
	"strconv"
	"syscall"
	"testing"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// TestResolveOwner: an owner value is refused or resolved, never a panic
// and never a negative PID, from a caller the daemon cannot see (as FUSE
// reports one from another PID namespace) as from one it can.
// control.FuzzPolicyValue fuzzes the parse; this covers what fs adds.
func TestResolveOwner(t *testing.T) {
	self := strconv.Itoa(os.Getpid())
	unseen, seen := &fuse.Caller{}, &fuse.Caller{Pid: uint32(os.Getpid())}
	for _, c := range []struct {
		caller *fuse.Caller
		value  string
		want   int
		err    error // nil: any error; checked only when bad
		bad    bool
	}{
		{caller: unseen, value: "0"},
		{caller: unseen, value: " none "},
		{caller: nil, value: self, want: os.Getpid()},
		{caller: unseen, value: self, want: os.Getpid()},
		{caller: seen, value: self, want: os.Getpid()},
		{caller: seen, value: "ancestor:0", want: os.Getpid()},
		{caller: seen, value: "ancestor:1", want: os.Getppid()},
		{caller: unseen, value: "ancestor:0", bad: true},
		{caller: nil, value: "ancestor:0", bad: true},
		{caller: seen, value: "ancestor:1025", bad: true},
		{caller: unseen, value: "", bad: true},
		{caller: unseen, value: "-1", bad: true},
		{caller: unseen, value: "12x", bad: true},
		{caller: unseen, value: "9223372036854775807", bad: true, err: syscall.ESRCH},
		{caller: unseen, value: "99999999999999999999", bad: true},
	} {
		pid, err := resolveOwner(c.caller, c.value)
		switch {
		case c.bad && (err == nil || c.err != nil && !errors.Is(err, c.err)):
			t.Errorf("resolveOwner(%+v, %q) = %d, %v; want an error %v", c.caller, c.value, pid, err, c.err)
		case !c.bad && (err != nil || pid != c.want):
			t.Errorf("resolveOwner(%+v, %q) = %d, %v; want %d", c.caller, c.value, pid, err, c.want)
		case pid < 0:
			t.Errorf("resolveOwner(%+v, %q) = %d", c.caller, c.value, pid)
		}
	}
}
