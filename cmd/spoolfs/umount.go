package main

import (
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"

	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/spoolfs/spoolfs/fs/mounts"
)

func runUmount(args []string, stdout, stderr io.Writer) int {
	var lazy bool
	flags := newUmountFlags(&lazy)
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			fmt.Fprintf(stdout, "Usage: spoolfs umount [-l] MOUNTPOINT\n\nUnmount a spoolfs mount; its daemon deletes everything and exits.\n\n%s", flags.FlagUsages())
			return exitOK
		}
		fmt.Fprintf(stderr, "spoolfs umount: %v\n", err)
		return exitUsage
	}
	if flags.NArg() != 1 {
		fmt.Fprintln(stderr, "spoolfs umount: need exactly one MOUNTPOINT")
		return exitUsage
	}
	dir, err := realMountpoint(flags.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "spoolfs umount: %v\n", err)
		return exitUsage
	}
	if !mounts.IsMounted(dir) {
		fmt.Fprintf(stderr, "spoolfs umount: %s is not mounted\n", dir)
		return exitFailure
	}
	if lazy {
		err = mounts.Unmount(dir)
	} else {
		err = unix.Unmount(dir, 0)
		if errors.Is(err, unix.EPERM) {
			err = fusermountUnmount(dir)
		}
	}
	if errors.Is(err, unix.EBUSY) {
		fmt.Fprintf(stderr, "spoolfs umount: %s is busy (a program has a file open or its cwd there); use -l to cut it off\n", dir)
		return exitFailure
	}
	if err != nil {
		fmt.Fprintf(stderr, "spoolfs umount: %v\n", err)
		return exitFailure
	}
	// Dead mounts that older builds stacked under this one would make
	// dir "Transport endpoint is not connected" again; a live mount
	// under it is somebody else's and stays.
	var mounted *mounts.MountedError
	if err := mounts.ClearDeadMounts(dir); err != nil && !errors.As(err, &mounted) {
		fmt.Fprintf(stderr, "spoolfs umount: %v\n", err)
		return exitFailure
	}
	return exitOK
}

func newUmountFlags(lazy *bool) *pflag.FlagSet {
	flags := pflag.NewFlagSet("spoolfs umount", pflag.ContinueOnError)
	flags.SetOutput(io.Discard)
	flags.BoolVarP(lazy, "lazy", "l", false, "if the mount is busy, detach it now and cut off the programs still using it")
	return flags
}

// fusermountUnmount is the way out for a user who mounted without root.
func fusermountUnmount(dir string) error {
	out, err := exec.Command("fusermount3", "-u", dir).CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "busy") {
			return unix.EBUSY
		}
		return fmt.Errorf("fusermount3 -u: %s", strings.TrimSpace(string(out)))
	}
	return nil
}
