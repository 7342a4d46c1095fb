package sysmem

import (
	"bufio"
	"bytes"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// Available is the kernel's estimate of the memory that can be had
// without swapping (MemAvailable in /proc/meminfo), in bytes; false if it
// cannot be read.
func Available() (int64, bool) {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, false
	}
	lines := bufio.NewScanner(bytes.NewReader(data))
	for lines.Scan() {
		fields := bytes.Fields(lines.Bytes())
		if len(fields) >= 2 && string(fields[0]) == "MemAvailable:" {
			kib, err := strconv.ParseInt(string(fields[1]), 10, 64)
			if err != nil || kib < 0 {
				return 0, false
			}
			return kib << 10, true
		}
	}
	return 0, false
}

// Physical is the machine's memory in bytes (1 GiB if it cannot be read).
func Physical() int64 {
	var info unix.Sysinfo_t
	if err := unix.Sysinfo(&info); err != nil {
		return 1 << 30
	}
	return int64(info.Totalram) * int64(info.Unit)
}
