//go:build darwin || freebsd

package control

import "golang.org/x/sys/unix"

// ErrNoAttr is "no such extended attribute".
const ErrNoAttr = unix.ENOATTR
