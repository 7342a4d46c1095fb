package main

import (
	"golang.org/x/sys/unix"
)

// vfsOptions are the generic options spoolfs honours as mount flags, like
// any filesystem: nosuid and nodev are on unless undone (a scratch space
// has no business with setuid programs or devices), noexec on request.
var vfsOptions = []vfsOption{
	{"nosuid", unix.MS_NOSUID, 0}, {"suid", 0, unix.MS_NOSUID},
	{"nodev", unix.MS_NODEV, 0}, {"dev", 0, unix.MS_NODEV},
	{"noexec", unix.MS_NOEXEC, 0}, {"exec", 0, unix.MS_NOEXEC},
	{"noatime", unix.MS_NOATIME, unix.MS_RELATIME | unix.MS_STRICTATIME},
	{"relatime", unix.MS_RELATIME, unix.MS_NOATIME | unix.MS_STRICTATIME},
	{"strictatime", unix.MS_STRICTATIME, unix.MS_NOATIME | unix.MS_RELATIME},
	{"nodiratime", unix.MS_NODIRATIME, 0},
}

const defaultVFSFlags = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_RELATIME
