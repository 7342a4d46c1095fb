package fusetest

import (
	"testing"
	"time"
)

// WaitFor polls cond until it holds, and fails the test if it does not
// within timeout. What a FUSE server does after a request (RELEASE after
// close(2), a notification sent later) can only be awaited, not observed
// at once.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(time.Millisecond)
	}
}
