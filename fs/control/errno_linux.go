package control

import "syscall"

// ErrNoAttr is "no such extended attribute".
const ErrNoAttr = syscall.ENODATA
