package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fakeApt is an apt-get that logs its arguments, a call a line. While its
// lock file holds a count above zero, update counts it down and fails as
// apt-get does when another apt holds the lists lock.
const fakeApt = `#!/usr/bin/env bash
echo "$*" >> "$FAKE_APT_LOG"
[[ " $* " == *" update "* ]] || exit 0
busy=$(< "$FAKE_APT_LOCK")
if [ "$busy" -gt 0 ]; then
  echo $((busy - 1)) > "$FAKE_APT_LOCK"
  echo "E: Could not get lock /var/lib/apt/lists/lock. It is held by process 4242 (apt-get)" >&2
  echo "E: Unable to lock directory /var/lib/apt/lists/" >&2
  exit 100
fi
if [ -n "$FAKE_APT_FAIL" ]; then echo "$FAKE_APT_FAIL" >&2; exit 100; fi
`

// runDeps runs scripts/deps where fusermount3, getfattr, setfacl and fio are
// missing and apt-get is fakeApt, whose first busy updates find the lists
// lock held by another apt. It returns the script's output, apt-get's
// calls, and the script's error.
func runDeps(t *testing.T, busy int, env ...string) (string, []string, error) {
	t.Helper()
	dir := t.TempDir()
	bin, gopath := filepath.Join(dir, "bin"), filepath.Join(dir, "gopath")
	for _, d := range []string{bin, filepath.Join(gopath, "bin")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Only what the script needs, so that the tools it looks for are missing.
	for _, tool := range []string{"bash", "sleep", "go"} {
		p, err := exec.LookPath(tool)
		if err != nil {
			t.Fatalf("%s: %v", tool, err)
		}
		if err := os.Symlink(p, filepath.Join(bin, tool)); err != nil {
			t.Fatal(err)
		}
	}
	for name, script := range map[string]string{
		"apt-get": fakeApt,
		"id":      "#!/usr/bin/env bash\necho 0\n", // root, as far as the script can tell
	} {
		if err := os.WriteFile(filepath.Join(bin, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// staticcheck is there: the script must not go and fetch it.
	if err := os.WriteFile(filepath.Join(gopath, "bin", "staticcheck"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	log, lock := filepath.Join(dir, "apt.log"), filepath.Join(dir, "apt.lock")
	if err := os.WriteFile(lock, []byte(strconv.Itoa(busy)), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("../scripts/deps")
	cmd.Env = append(os.Environ(), "PATH="+bin, "GOPATH="+gopath, "FAKE_APT_LOG="+log, "FAKE_APT_LOCK="+lock)
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	calls, _ := os.ReadFile(log)
	return string(out), strings.Split(strings.TrimSpace(string(calls)), "\n"), err
}

// TestDepsWaitsForApt: while another apt-get holds its lock, scripts/deps
// waits for it (make test used to fail at once), and says what it installs.
func TestDepsWaitsForApt(t *testing.T) {
	out, calls, err := runDeps(t, 2)
	if err != nil {
		t.Fatalf("scripts/deps: %v\n%s", err, out)
	}
	for _, want := range []string{"installing fuse3 attr acl fio", "waiting for another apt to finish", "installed fuse3 attr acl fio"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	var updates int
	for _, c := range calls {
		if strings.Contains(c, " update") {
			updates++
		}
	}
	last := calls[len(calls)-1]
	if updates != 3 || !strings.Contains(last, "install") || !strings.Contains(last, "fuse3 attr acl fio") {
		t.Errorf("apt-get calls %q: want 3 updates, the first two refused, then the install", calls)
	}
	// install waits for the dpkg lock itself, if told to.
	if !strings.Contains(last, "DPkg::Lock::Timeout=600") {
		t.Errorf("install %q does not wait for the dpkg lock", last)
	}
}

// TestDepsGivesUp: a lock held for longer than APT_LOCK_WAIT, or any other
// failure of apt-get update, fails the script with apt's own message.
func TestDepsGivesUp(t *testing.T) {
	start := time.Now()
	out, calls, err := runDeps(t, 1<<30, "APT_LOCK_WAIT=2")
	if err == nil || !strings.Contains(out, "Could not get lock /var/lib/apt/lists/lock") {
		t.Errorf("lock held for ever: %v\n%s", err, out)
	}
	if took := time.Since(start); took > time.Minute {
		t.Errorf("gave up after %v, with APT_LOCK_WAIT=2", took)
	}
	if strings.Contains(strings.Join(calls, "\n"), "install") {
		t.Errorf("installed without the lists: %q", calls)
	}

	out, calls, err = runDeps(t, 0, "FAKE_APT_FAIL=E: Failed to fetch http://deb.debian.org/debian/dists/bookworm/InRelease")
	if err == nil || !strings.Contains(out, "Failed to fetch") {
		t.Errorf("update failing: %v\n%s", err, out)
	}
	if len(calls) != 1 {
		t.Errorf("apt-get calls %q: want one update, no retry of a failure that is not a lock", calls)
	}
}
