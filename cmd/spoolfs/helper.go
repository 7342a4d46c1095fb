package main

import (
	"path/filepath"
	"strings"

	"github.com/spoolfs/spoolfs/fs/mounts"
)

// mount(8) runs spoolfs through fuse3's mount.fuse3 as
// "spoolfs SOURCE MOUNTPOINT -o OPTIONS". mount.fuse3 appends "dev" and
// "suid" to OPTIONS unless they hold nodev or nosuid, and mount(8) never
// passes an administrator's own "suid" or "dev" on (they are its defaults,
// so it drops them): whenever the two words come, they are the helper's and
// say nothing of what was asked. helperArgs drops them, so that spoolfs's
// defaults nosuid and nodev hold, and puts back those that the
// administrator did write, where mount(8) read them.

// helperArgs turns the arguments that follow SOURCE into runMount's.
// written is what the administrator gave mount(8) (writtenMountOptions).
func helperArgs(args, written []string) []string {
	out := make([]string, 0, len(args)+2)
	appended := map[string]bool{} // by mount.fuse3
	for i := 0; i < len(args); i++ {
		if args[i] != "-o" || i+1 == len(args) { // mount.fuse3 writes no other form
			out = append(out, args[i])
			continue
		}
		var kept []string
		for _, opt := range strings.Split(args[i+1], ",") {
			if opt == "suid" || opt == "dev" {
				appended[opt] = true
				continue
			}
			kept = append(kept, opt)
		}
		out = append(out, "-o", strings.Join(kept, ","))
		i++
	}
	// mount.fuse3 appended suid only if mount(8) settled on suid; whether
	// the administrator asked for it says the last of suid and nosuid
	// that they wrote.
	var restore []string
	for _, word := range []string{"suid", "dev"} {
		if appended[word] && lastOf(written, word, "no"+word) == word {
			restore = append(restore, word)
		}
	}
	if len(restore) > 0 {
		out = append(out, "-o", strings.Join(restore, ","))
	}
	return out
}

// lastOf returns whichever of a and b comes last in opts, "" if neither.
func lastOf(opts []string, a, b string) string {
	last := ""
	for _, o := range opts {
		if o == a || o == b {
			last = o
		}
	}
	return last
}

// mount(8)'s options that take a value, short and long (util-linux 2.3x).
// Abbreviated long options are not recognised.
const mountValueShort = "oOtTLUN"

var mountValueLong = map[string]bool{
	"options": true, "test-opts": true, "types": true, "fstab": true, "label": true,
	"uuid": true, "namespace": true, "options-mode": true, "options-source": true,
	"source": true, "target": true, "target-prefix": true, "map-users": true, "map-groups": true,
}

// mountOptions returns the options a mount(8) command line (argv) gave for
// the mount on dir, as mount(8) reads them: those of dir's fstab line, if it
// reads fstab, then those of -o. readFile reads the fstab.
func mountOptions(argv []string, dir string, readFile func(string) ([]byte, error)) []string {
	var cmdline []string
	fstab, mode, sources := "/etc/fstab", "prepend", "fstab"
	positional, all := 0, false
	take := func(name, value string) {
		switch name {
		case "o", "options":
			cmdline = append(cmdline, strings.Split(value, ",")...)
		case "T", "fstab":
			fstab = value
		case "options-mode":
			mode = value
		case "options-source":
			sources = value
		case "source", "target":
			positional++
		}
	}
	for i := 1; i < len(argv); i++ {
		arg := argv[i]
		switch {
		case arg == "--":
			positional += len(argv) - i - 1
			i = len(argv)
		case strings.HasPrefix(arg, "--"):
			name, value, hasValue := strings.Cut(arg[2:], "=")
			if mountValueLong[name] && !hasValue && i+1 < len(argv) {
				i++
				value, hasValue = argv[i], true
			}
			all = all || name == "all"
			if hasValue {
				take(name, value)
			}
		case strings.HasPrefix(arg, "-") && len(arg) > 1:
			for j := 1; j < len(arg); j++ {
				c := arg[j : j+1]
				all = all || c == "a"
				if !strings.Contains(mountValueShort, c) {
					continue
				}
				if value := arg[j+1:]; value != "" {
					take(c, value)
				} else if i+1 < len(argv) {
					i++
					take(c, argv[i])
				}
				break
			}
		default:
			positional++
		}
	}
	// Given both source and target, mount(8) leaves fstab alone.
	if (positional >= 2 && !all) || mode == "ignore" || mode == "replace" || !strings.Contains(sources, "fstab") {
		return cmdline
	}
	line := fstabOptions(readFile, fstab, dir)
	if mode == "append" {
		return append(cmdline, line...)
	}
	return append(line, cmdline...)
}

// fstabOptions returns the options of the first line of the fstab at path
// that mounts on dir.
func fstabOptions(readFile func(string) ([]byte, error), path, dir string) []string {
	data, err := readFile(path)
	if err != nil {
		return nil
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if filepath.Clean(mounts.UnescapeMountPath(f[1])) == dir {
			return strings.Split(f[3], ",")
		}
	}
	return nil
}
