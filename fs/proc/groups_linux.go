package proc

import (
	"bufio"
	"os"
	"slices"
	"strconv"
	"strings"
)

// InGroup reports whether thread tid has gid among its supplementary
// groups, as /proc/TID/status lists them (in the daemon's user namespace).
// A thread that cannot be read (gone, outside our PID namespace: tid 0)
// is not in it.
func InGroup(tid int, gid uint32) bool {
	if tid <= 0 {
		return false
	}
	f, err := os.Open("/proc/" + strconv.Itoa(tid) + "/status")
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if groups, ok := strings.CutPrefix(sc.Text(), "Groups:"); ok {
			return slices.Contains(strings.Fields(groups), strconv.FormatUint(uint64(gid), 10))
		}
	}
	return false
}
