package fs

import "github.com/hanwen/go-fuse/v2/fuse"

// extraCapabilities: with HANDLE_KILLPRIV_V2 the kernel stops asking for
// security.capability before every write (a round trip that halved write
// throughput) and leaves clearing setuid/setgid on write to us.
const extraCapabilities = fuse.CAP_HANDLE_KILLPRIV_V2
