// Command spoolfs mounts self-cleaning temporary directories: files live in
// RAM until they grow past a threshold, then spill to disk, and everything
// is deleted on unmount.
//
//	spoolfs mount [flags] MOUNTPOINT
//	spoolfs umount MOUNTPOINT
//
// It owns the command line and the daemon around the fs package. Every
// option is declared once, in an option table (options.go); the flags, -o
// parsing, --help, the manual page and shell completion are made from it,
// and a test holds the README's flag table to it. A mount's flags are
// parsed into the configs of spill, fs and quota (mountConfig), and
// resolve checks them all before anything is mounted: a bad value is one
// line on stderr that names the flag, exit status 2, nothing mounted.
package main

import (
	"fmt"
	"io"
	"os"
)

// Exit codes, named so that scripts and tests can rely on them.
const (
	exitOK      = 0
	exitFailure = 1 // the command was right but the work failed
	exitUsage   = 2 // bad flags, options or arguments: nothing was done
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `spoolfs: self-cleaning temporary directories in RAM that spill to disk

Usage:
  spoolfs mount [flags] MOUNTPOINT     mount (returns once ready; -f stays in the foreground)
  spoolfs umount [-l] MOUNTPOINT       unmount and delete everything in it (-l: even if busy)
  spoolfs session new|ls|rm|touch ...  self-deleting session directories (see 'spoolfs session --help')
  spoolfs status MOUNTPOINT [--json]   capacity, RAM, spill and sessions at a glance
  spoolfs set MOUNTPOINT --size 8G ... change a live mount's limits (root; also mount -o remount)
  spoolfs user-limit MOUNTPOINT USER --size S --inodes N | --default
                                       give a user quotas of their own (root)
  spoolfs SOURCE MOUNTPOINT -o OPTS    the form mount(8) uses through mount.fuse3
  spoolfs completion bash|zsh|fish     print a shell completion script
  spoolfs man                          print the manual page, spoolfs(8)
  spoolfs version [--json]             version, commit, Go and go-fuse (also --version)
  spoolfs help [COMMAND]

Run 'spoolfs COMMAND --help' for a command's flags.
`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "mount":
		return runMount(args[1:], stdout, stderr)
	case "umount", "unmount":
		return runUmount(args[1:], stdout, stderr)
	case "session":
		return runSession(args[1:], stdout, stderr)
	case "status":
		return runStatus(args[1:], stdout, stderr)
	case "set":
		return runSet(args[1:], stdout, stderr)
	case "user-limit":
		return runUserLimit(args[1:], stdout, stderr)
	case "man":
		return runMan(stdout)
	case "completion":
		return runCompletion(args[1:], stdout, stderr)
	case "version", "--version":
		return runVersion(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		if len(args) > 1 {
			return run([]string{args[1], "--help"}, stdout, stderr)
		}
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	if len(args) >= 2 && !isFlag(args[0]) && !isFlag(args[1]) {
		// mount.fuse3 calls "spoolfs SOURCE MOUNTPOINT -o OPTIONS"; the
		// source names nothing for a filesystem that starts empty.
		return runMount(helperArgs(args[1:], writtenMountOptions(args[1])), stdout, stderr)
	}
	fmt.Fprintf(stderr, "spoolfs: unknown command %q (try 'spoolfs help')\n", args[0])
	return exitUsage
}

func isFlag(s string) bool { return len(s) > 0 && s[0] == '-' }
