package proc

import (
	"os/exec"
	"strconv"
	"strings"
)

// Parent asks ps(1): FreeBSD has no /proc by default, and x/sys has no
// kinfo_proc reader for it.
func Parent(pid int) (int, error) {
	out, err := exec.Command("ps", "-o", "ppid=", "-p", strconv.Itoa(pid)).Output()
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(out)))
}
