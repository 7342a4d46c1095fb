package sysmem

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestFigures holds both figures to /proc/meminfo's MemTotal: Physical is
// it (sysinfo(2) and meminfo count the same pages), Available is above 0
// and not above it.
func TestFigures(t *testing.T) {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		t.Skip(err)
	}
	_, rest, _ := strings.Cut(string(data), "MemTotal:")
	kib, err := strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	total := kib << 10
	if got := Physical(); got < total-(4<<20) || got > total+(4<<20) {
		t.Errorf("Physical() = %d, MemTotal %d", got, total)
	}
	if avail, ok := Available(); !ok || avail <= 0 || avail > total {
		t.Errorf("Available() = %d, %v; MemTotal %d", avail, ok, total)
	}
}
