package test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spoolfs/spoolfs/fs/control"
	"github.com/spoolfs/spoolfs/fs/fuseuring"
)

// uringOffered says whether the kernel offers FUSE-over-io_uring to new
// mounts (the fuse module's enable_uring).
func uringOffered() bool {
	b, err := os.ReadFile(fuseuring.EnableParameter)
	return err == nil && strings.TrimSpace(string(b)) == "Y"
}

// statusTransport is the transport 'spoolfs status --json' reports.
func statusTransport(t *testing.T, dir string) string {
	t.Helper()
	code, out, stderr := runSpoolfs(t, "status", "--json", dir)
	if code != 0 {
		t.Fatalf("status: exit %d: %s", code, stderr)
	}
	var report control.StatusReport
	if err := json.Unmarshal([]byte(out), &report); err != nil || report.Mount == nil {
		t.Fatalf("status --json: %v: %s", err, out)
	}
	return report.Mount.Transport
}

// --transport auto serves over io_uring exactly when the kernel offers
// it, --transport dev over /dev/fuse always, and status says which; the
// files written through either are there.
func TestTransportChoice(t *testing.T) {
	auto := "dev"
	if uringOffered() {
		auto = "uring"
	}
	for _, c := range []struct{ flag, want string }{{"auto", auto}, {"dev", "dev"}} {
		t.Run(c.flag, func(t *testing.T) {
			m := mountBinary(t, "--transport", c.flag)
			if got := statusTransport(t, m.Dir); got != c.want {
				t.Errorf("--transport %s: status says %q, want %q", c.flag, got, c.want)
			}
			p := filepath.Join(m.Dir, "f")
			writeFile(t, p, []byte("through "+c.want))
			checkContent(t, p, []byte("through "+c.want))
		})
	}
}

// A --transport that is not one, or uring where the kernel does not offer
// it, is a usage error in one line, and nothing is mounted.
func TestTransportRefused(t *testing.T) {
	requireFUSE(t)
	cases := [][]string{{"--transport", "fast"}}
	if !uringOffered() {
		cases = append(cases, []string{"--transport", "uring"})
	}
	for _, args := range cases {
		dir := t.TempDir()
		code, _, stderr := runSpoolfs(t, append(append([]string{"mount", "-f"}, args...), dir)...)
		if code != 2 || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "transport") {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and one line about the transport", args, code, stderr)
		}
		checkUnmountedDir(t, dir)
	}
}

func checkUnmountedDir(t *testing.T, dir string) {
	t.Helper()
	if b, err := os.ReadFile("/proc/self/mountinfo"); err == nil && strings.Contains(string(b), " "+dir+" ") {
		t.Errorf("%s is mounted", dir)
	}
}
