package test

import (
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/hanwen/go-fuse/v2/posixtest"
)

// TestPosix runs go-fuse's posixtest conformance suite, written by people
// outside this project, against a mount with files in RAM and one where
// every byte is spilled.
func TestPosix(t *testing.T) {
	names := make([]string, 0, len(posixtest.All))
	for name := range posixtest.All {
		names = append(names, name)
	}
	sort.Strings(names)
	// Known-wrong tests, which fail on tmpfs in the same way.
	skip := map[string]string{
		"FcntlFlockLocksFile": "expects a second fd of the same process to conflict with a POSIX lock; POSIX locks are per process, and tmpfs returns success too",
	}
	tiers(t, func(t *testing.T, o mountOpts) {
		m := newMount(t, o)
		for _, name := range names {
			t.Run(name, func(t *testing.T) {
				if why, ok := skip[name]; ok {
					t.Skip(why)
				}
				dir := filepath.Join(m.Dir, name)
				if err := os.Mkdir(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				posixtest.All[name](t, dir)
				if err := os.RemoveAll(dir); err != nil {
					t.Fatal(err)
				}
			})
		}
	})
}
