package fs

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
)

// memAvailable is the kernel's estimate of the memory that can be had
// without swapping (MemAvailable in /proc/meminfo), in bytes; false if it
// cannot be read.
func memAvailable() (int64, bool) {
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
