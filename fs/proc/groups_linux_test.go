package proc

import (
	"os"
	"slices"
	"testing"
)

func TestInGroup(t *testing.T) {
	groups, err := os.Getgroups()
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range groups {
		if !InGroup(os.Getpid(), uint32(g)) {
			t.Errorf("this process is in group %d, InGroup says not", g)
		}
	}
	outside := uint32(4000000)
	for slices.Contains(groups, int(outside)) {
		outside++
	}
	if InGroup(os.Getpid(), outside) {
		t.Errorf("InGroup says this process is in group %d", outside)
	}
	if InGroup(0, 0) {
		t.Error("InGroup of thread 0 (outside our PID namespace) says yes")
	}
}
