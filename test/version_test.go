package test

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestVersionFromCheckout: a -trimpath build from a git checkout (what
// 'make build' does) says the commit it was built from, read from the
// toolchain's vcs stamp, with no -ldflags. The build is of a fresh clone
// of HEAD, since Go stamps only a plain checkout (not a git worktree) and
// a clone has no uncommitted changes: modified must be false.
func TestVersionFromCheckout(t *testing.T) {
	top, err := exec.Command("git", "-C", "..", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Skipf("not a git checkout (%v): no commit to stamp", err)
	}
	clone := filepath.Join(t.TempDir(), "spoolfs")
	if out, err := exec.Command("git", "clone", "-q", "--no-hardlinks", strings.TrimSpace(string(top)), clone).CombinedOutput(); err != nil {
		t.Fatalf("git clone: %v\n%s", err, out)
	}
	head, err := exec.Command("git", "-C", clone, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "spoolfs")
	// -buildvcs=true overrides a GOFLAGS=-buildvcs=false of the machine's.
	build := exec.Command("go", "build", "-trimpath", "-buildvcs=true", "-o", bin, "./cmd/spoolfs")
	build.Dir = clone
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	code, stdout, stderr := runBinary(t, bin, "version", "--json")
	if code != 0 {
		t.Fatalf("version --json: exit %d: %s", code, stderr)
	}
	var v struct {
		Version  string `json:"version"`
		Commit   string `json:"commit"`
		Modified *bool  `json:"modified"`
		GoFuse   string `json:"go_fuse"`
	}
	if err := json.Unmarshal([]byte(stdout), &v); err != nil {
		t.Fatalf("version --json: %v: %s", err, stdout)
	}
	if v.Commit != strings.TrimSpace(string(head)) || v.Modified == nil || *v.Modified {
		t.Errorf("version --json of a build of %s: %s", head, stdout)
	}
	if !strings.HasPrefix(v.Version, "v") || !strings.HasPrefix(v.GoFuse, "v2.") {
		t.Errorf("version --json: want a module version and go-fuse v2: %s", stdout)
	}
	code, stdout, _ = runBinary(t, bin, "--version")
	if code != 0 || !strings.Contains(stdout, "commit "+strings.TrimSpace(string(head))) {
		t.Errorf("--version: exit %d: %q, want the commit", code, stdout)
	}
}
