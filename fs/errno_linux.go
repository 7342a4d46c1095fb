package fs

import "syscall"

// errNoAttr is "no such extended attribute".
const errNoAttr = syscall.ENODATA
