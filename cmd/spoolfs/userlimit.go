package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/user"
	"strconv"

	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/spoolfs/spoolfs/fs/control"
)

// userLimitOptions are the flags of 'spoolfs user-limit'.
type userLimitOptions struct {
	size   byteSize
	inodes count
	clear  bool
}

func newUserLimitFlags(o *userLimitOptions) *pflag.FlagSet {
	f := pflag.NewFlagSet("user-limit", pflag.ContinueOnError)
	f.Var(&o.size, "size", "most bytes the uid's files may hold (0: none)")
	f.Var(&o.inodes, "inodes", "most inodes the uid may own (0: none)")
	f.BoolVar(&o.clear, "default", false, "take the uid's own limits away: the mount's --user-* apply again")
	return f
}

const userLimitUsage = "Usage: spoolfs user-limit MOUNTPOINT USER (--size SIZE --inodes N | --default)"

// runUserLimit gives a uid limits of its own through the root's
// user_limits attribute; only root may. A limit not given is none, so that
// what is set is exactly what the command line says.
func runUserLimit(args []string, stdout, stderr io.Writer) int {
	var o userLimitOptions
	f := newUserLimitFlags(&o)
	if code, ok := parseFlags(f, args, userLimitUsage, stdout, stderr); !ok {
		return code
	}
	given := o.size.set || o.inodes.set
	switch {
	case f.NArg() != 2:
		fmt.Fprintln(stderr, "spoolfs user-limit: need a MOUNTPOINT and a USER")
		return exitUsage
	case given == o.clear:
		fmt.Fprintln(stderr, "spoolfs user-limit: need --size or --inodes (what is not given is none), or --default")
		return exitUsage
	case o.size.percent > 0:
		fmt.Fprintf(stderr, "spoolfs user-limit: --size %s: give bytes, not a share\n", o.size.text)
		return exitUsage
	}
	uid, err := lookupUID(f.Arg(1))
	if err != nil {
		fmt.Fprintf(stderr, "spoolfs user-limit: %v\n", err)
		return exitUsage
	}
	var l *control.UserLimit
	if !o.clear {
		l = &control.UserLimit{Bytes: o.size.bytes, Inodes: o.inodes.n}
	}
	value, _ := json.Marshal(control.UserLimits{strconv.FormatUint(uint64(uid), 10): l})
	if err := unix.Setxattr(f.Arg(0), control.AttrUserLimits, value, 0); err != nil {
		fmt.Fprintf(stderr, "spoolfs user-limit: %s: %v\n", quoteName(f.Arg(0)), describeUserLimitError(err))
		return exitFailure
	}
	return exitOK
}

func describeUserLimitError(err error) error {
	switch {
	case errors.Is(err, unix.EPERM):
		return errors.New("not allowed: only root sets user limits, on the mount's root")
	case errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, control.ErrNoAttr):
		return errors.New("not the root of a spoolfs mount")
	}
	return err
}

// lookupUID reads a uid, or the name of a user of this machine.
func lookupUID(s string) (uint32, error) {
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		return uint32(n), nil
	}
	u, err := user.Lookup(s)
	if err != nil {
		return 0, fmt.Errorf("%q: neither a uid nor a user", s)
	}
	n, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("user %q has uid %q", s, u.Uid)
	}
	return uint32(n), nil
}
