package main

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

func TestProcessOfThread(t *testing.T) {
	self := uint32(os.Getpid())
	tid := uint32(unix.Gettid())
	if got := processOfThread(tid); got != self {
		t.Errorf("processOfThread(%d) = %d; want this process, %d", tid, got, self)
	}
	if got := processOfThread(1<<31 - 1); got != 0 {
		t.Errorf("a thread that does not exist: %d, want 0", got)
	}
}
