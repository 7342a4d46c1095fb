//go:build !linux

package fs

const extraCapabilities = 0

// posixACLs: only Linux's FUSE enforces POSIX ACLs; storing them elsewhere
// would grant nothing they say.
const posixACLs = false

// dontMask: the kernel applies the umask.
const dontMask = 0
