package main

import "golang.org/x/sys/unix"

// vfsOptions: the generic options as BSD mount flags.
var vfsOptions = []vfsOption{
	{"nosuid", unix.MNT_NOSUID, 0}, {"suid", 0, unix.MNT_NOSUID},
	{"nodev", 0, 0}, {"dev", 0, 0}, // FreeBSD has no device nodes on file systems
	{"noexec", unix.MNT_NOEXEC, 0}, {"exec", 0, unix.MNT_NOEXEC},
	{"noatime", unix.MNT_NOATIME, 0}, {"relatime", 0, 0}, {"strictatime", 0, unix.MNT_NOATIME},
	{"nodiratime", 0, 0},
}

const defaultVFSFlags = unix.MNT_NOSUID
