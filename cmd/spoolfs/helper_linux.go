package main

import (
	"os"

	"github.com/spoolfs/spoolfs/fs/proc"
)

// writtenMountOptions returns the options that the administrator gave the
// mount(8) that runs this helper call for dir (see mountOptions), or nil.
// That mount(8) is the nearest ancestor of that name: mount.fuse3 execs a
// shell, which runs spoolfs. Only ancestors are read, so nothing can speak
// for mount(8) but the caller itself, who could have asked for the options
// directly; and mount(8) takes options from a user who is not root only
// out of fstab, which root wrote.
func writtenMountOptions(dir string) []string {
	pid := os.Getppid()
	for range 3 {
		if pid <= 1 {
			break
		}
		if comm, err := proc.Command(pid); err == nil && comm == "mount" {
			argv, err := proc.Args(pid)
			if err != nil {
				return nil
			}
			return mountOptions(argv, dir, os.ReadFile)
		}
		var err error
		if pid, err = proc.Parent(pid); err != nil {
			break
		}
	}
	return nil
}
