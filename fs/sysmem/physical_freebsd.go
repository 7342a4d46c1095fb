package sysmem

import "golang.org/x/sys/unix"

// Physical is the machine's memory in bytes (1 GiB if it cannot be read).
func Physical() int64 {
	n, err := unix.SysctlUint64("hw.physmem")
	if err != nil {
		return 1 << 30
	}
	return int64(n)
}
