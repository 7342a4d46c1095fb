package test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spoolfs/spoolfs/fs/fusetest"
	"github.com/spoolfs/spoolfs/fs/mounts"
)

// builtBinary is one build of cmd/spoolfs, made once per test run.
type builtBinary struct {
	once sync.Once
	race bool
	path string
	err  error
}

var (
	binDir      string
	raceBinary  = &builtBinary{race: true}  // what most tests run: races show up
	plainBinary = &builtBinary{race: false} // for memory figures: -race multiplies RSS
)

func (b *builtBinary) get(t testing.TB) string {
	t.Helper()
	b.once.Do(func() {
		name := "spoolfs"
		args := []string{"build"}
		if b.race {
			name, args = "spoolfs-race", append(args, "-race")
		}
		b.path = filepath.Join(binDir, name)
		out, err := exec.Command("go", append(args, "-o", b.path, "../cmd/spoolfs")...).CombinedOutput()
		if err != nil {
			b.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// spoolfsBinary is the -race build of cmd/spoolfs.
func spoolfsBinary(t testing.TB) string { return raceBinary.get(t) }

func TestMain(m *testing.M) {
	var err error
	if binDir, err = os.MkdirTemp("", "spoolfs-bin"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(binDir)
	os.Exit(code)
}

// withTestTransport adds the suite's transport (fusetest.Transport:
// SPOOLFS_TEST_TRANSPORT, else dev) to a mount command line that does not
// choose one, so that daemons serve over what the in-process mounts do,
// whatever the kernel's enable_uring says.
func withTestTransport(args []string) []string {
	if len(args) == 0 || args[0] != "mount" || slices.Contains(args, "--transport") {
		return args
	}
	return append([]string{"mount", "--transport", fusetest.Transport()}, args[1:]...)
}

// runSpoolfs runs the binary and returns its exit code, stdout and stderr.
func runSpoolfs(t testing.TB, args ...string) (int, string, string) {
	t.Helper()
	return runBinary(t, spoolfsBinary(t), args...)
}

func runBinary(t testing.TB, bin string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(bin, withTestTransport(args)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		code := 0
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			code = exit.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return code, stdout.String(), stderr.String()
	case <-time.After(90 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("spoolfs %v did not finish in 90s", args)
	}
	return 0, "", ""
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	fusetest.WaitFor(t, timeout, what, cond)
}

// daemonPID finds the spoolfs daemon serving dir by its command line.
func daemonPID(dir string) int {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(cmdline), "\x00")
		if len(args) > 1 && strings.HasPrefix(filepath.Base(args[0]), "spoolfs") && args[1] == "mount" && contains(args, dir) {
			return pid
		}
	}
	return 0
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// binaryMount mounts with 'spoolfs mount' (daemon mode) and registers a
// cleanup that makes sure the daemon is gone, the mount too, and the spill
// directory empty.
type binaryMount struct {
	Dir, SpillDir string
	PID           int
}

func mountBinary(t *testing.T, extra ...string) *binaryMount {
	t.Helper()
	return mountWith(t, spoolfsBinary(t), extra...)
}

func mountWith(t *testing.T, bin string, extra ...string) *binaryMount {
	t.Helper()
	requireFUSE(t)
	m := &binaryMount{Dir: t.TempDir(), SpillDir: t.TempDir()}
	args := append([]string{"mount", "--spill-dir", m.SpillDir}, extra...)
	args = append(args, m.Dir)
	code, _, stderr := runBinary(t, bin, args...)
	if code != 0 {
		t.Fatalf("spoolfs %v: exit %d: %s", args, code, stderr)
	}
	if !mounts.IsMounted(m.Dir) {
		t.Fatalf("spoolfs mount returned 0 but %s is not mounted", m.Dir)
	}
	m.PID = daemonPID(m.Dir)
	if m.PID == 0 {
		t.Fatalf("no daemon found for %s", m.Dir)
	}
	t.Cleanup(func() {
		fusetest.UnmountDaemon(m.Dir)
		m.waitGone(t)
		checkNothingLeft(t, m.Dir, m.SpillDir)
	})
	return m
}

// waitGone waits for the daemon to exit.
func (m *binaryMount) waitGone(t testing.TB) {
	t.Helper()
	waitFor(t, 30*time.Second, "the daemon to exit", func() bool {
		return syscall.Kill(m.PID, 0) != nil || isZombie(m.PID)
	})
}

func isZombie(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	fields := strings.Fields(string(stat))
	return len(fields) > 2 && fields[2] == "Z"
}

// statusKiB reads a field such as VmHWM from /proc/PID/status, in KiB.
func statusKiB(t testing.TB, pid int, field string) int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}
