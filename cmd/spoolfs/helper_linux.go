package main

import (
	"os"
	"strconv"
	"strings"
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
		proc := "/proc/" + strconv.Itoa(pid)
		if comm, err := os.ReadFile(proc + "/comm"); err == nil && strings.TrimSpace(string(comm)) == "mount" {
			cmdline, err := os.ReadFile(proc + "/cmdline")
			if err != nil {
				return nil
			}
			argv := strings.Split(strings.TrimSuffix(string(cmdline), "\x00"), "\x00")
			return mountOptions(argv, dir, os.ReadFile)
		}
		var err error
		if pid, err = parentPID(pid); err != nil {
			break
		}
	}
	return nil
}
