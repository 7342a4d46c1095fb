package fs

import "github.com/hanwen/go-fuse/v2/fuse"

// extraCapabilities: with HANDLE_KILLPRIV_V2 the kernel stops asking for
// security.capability before every write (a round trip that halved write
// throughput) and leaves clearing setuid/setgid on write to us.
const extraCapabilities = fuse.CAP_HANDLE_KILLPRIV_V2

// posixACLs: Linux enforces POSIX ACLs for FUSE (FUSE_POSIX_ACL), and
// spoolfs stores them (acl.go).
const posixACLs = true

// dontMask asks the kernel to leave the umask to RawFS's umasker, which
// applies it unless a default ACL replaces it.
const dontMask = fuse.CAP_DONT_MASK
