//go:build darwin || freebsd

package fs

import "golang.org/x/sys/unix"

// errNoAttr is "no such extended attribute".
const errNoAttr = unix.ENOATTR
