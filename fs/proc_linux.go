package fs

import (
	"os"
	"strconv"
	"strings"
	"syscall"
)

// processStart returns a token that changes if pid is reused: its start
// time in clock ticks since boot, field 22 of /proc/PID/stat. A zombie
// counts as gone.
func processStart(pid int) (string, error) {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", syscall.ESRCH
	}
	i := strings.LastIndexByte(string(stat), ')')
	if i < 0 {
		return "", syscall.ESRCH
	}
	fields := strings.Fields(string(stat[i+1:]))
	if len(fields) < 20 || fields[0] == "Z" {
		return "", syscall.ESRCH
	}
	return fields[19], nil
}
