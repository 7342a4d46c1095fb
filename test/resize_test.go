package test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/spoolfs/spoolfs/fs/control"
)

// Live resizing (issue #12): mount -o remount through mount(8), and
// 'spoolfs set', change a mounted spoolfs's limits at once.

// mountStatus reads the mount's figures from its root.
func mountStatus(t testing.TB, dir string) control.Status {
	t.Helper()
	var st control.Status
	if err := json.Unmarshal([]byte(getx(t, dir, control.AttrStatus)), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// dfSize is the capacity df shows for dir, and its inodes.
func dfSize(t testing.TB, dir string) (bytes, inodes int64) {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Blocks) * st.Bsize, int64(st.Files)
}

// publicBinary copies the binary, as name, into a directory that every
// user can read, and returns that directory.
func publicBinary(t *testing.T, name string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "spoolfs-public-bin")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	data, err := os.ReadFile(spoolfsBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// remount runs 'mount -o remount,OPTS dir' through the real mount(8). It
// runs the helper mount.fuse3 runs for fuse.spoolfs, "spoolfs", from the
// fixed PATH mount(8) gives helpers; so mount(8) runs in a mount namespace
// of its own where /usr/local/bin holds this build as spoolfs, and never
// one installed on the machine.
func remount(t *testing.T, dir, opts string) (string, error) {
	t.Helper()
	if _, err := exec.LookPath("mount.fuse3"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("mount.fuse3 (package fuse3) is missing")
		}
		t.Skip("mount.fuse3 (package fuse3) is missing")
	}
	bin := publicBinary(t, "spoolfs")
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c",
		`mount --bind "$1" /usr/local/bin && exec mount -o "remount,$2" "$3"`, "sh", bin, opts, dir)
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// TestRemountResizes: mount -o remount,size=... grows and shrinks a live
// mount, df shows it at once; a shrink below what is in use is refused
// with a clear message and changes nothing, not even the other options of
// the same remount; the data stays.
func TestRemountResizes(t *testing.T) {
	m := mountBinary(t, "--size", "64M", "--inodes", "1000")
	if out, err := remount(t, m.Dir, "size=128M,inodes=2000"); err != nil {
		t.Fatalf("remount,size=128M: %v: %s", err, out)
	}
	if size, inodes := dfSize(t, m.Dir); size != 128<<20 || inodes != 2000 {
		t.Fatalf("after remount,size=128M,inodes=2000: df shows %d bytes, %d inodes", size, inodes)
	}
	data := randBytes(1, 40<<20)
	writeFile(t, filepath.Join(m.Dir, "data"), data)
	out, err := remount(t, m.Dir, "size=16M,inodes=3000")
	if err == nil {
		t.Fatal("remount,size=16M below 40 MiB in use succeeded")
	}
	if !strings.Contains(out, "below what is in use") {
		t.Errorf("refused shrink says %q, want it to say the size is below what is in use", out)
	}
	if size, inodes := dfSize(t, m.Dir); size != 128<<20 || inodes != 2000 {
		t.Fatalf("a refused remount changed df to %d bytes, %d inodes", size, inodes)
	}
	if out, err := remount(t, m.Dir, "size=48M"); err != nil {
		t.Fatalf("remount,size=48M with 40 MiB in use: %v: %s", err, out)
	}
	if size, _ := dfSize(t, m.Dir); size != 48<<20 {
		t.Fatalf("after remount,size=48M: df shows %d bytes", size)
	}
	if err := os.WriteFile(filepath.Join(m.Dir, "more"), make([]byte, 16<<20), 0o644); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("writing 16 MiB more into 48 MiB with 40 used: %v, want ENOSPC", err)
	}
	checkContent(t, filepath.Join(m.Dir, "data"), data)
	if out, err := remount(t, m.Dir, "sise=1G"); err == nil || !strings.Contains(out, "unknown option") {
		t.Errorf("remount with a misspelt option: %v: %q, want it refused as unknown", err, out)
	}
}

// TestSetLimitsRootOnly: 'spoolfs set' as root changes the limits and says
// what changed in one line; as nobody it is refused and changes nothing;
// bad values are a usage error.
func TestSetLimitsRootOnly(t *testing.T) {
	m := mountBinary(t, "--size", "64M")
	code, stdout, stderr := runSpoolfs(t, "set", m.Dir, "--size", "96M")
	if code != 0 {
		t.Fatalf("spoolfs set --size 96M: exit %d: %s", code, stderr)
	}
	if want := "size 64 MiB -> 96 MiB"; strings.TrimSpace(stdout) != want {
		t.Errorf("spoolfs set printed %q, want %q", stdout, want)
	}
	if size, _ := dfSize(t, m.Dir); size != 96<<20 {
		t.Fatalf("after set --size 96M: df shows %d bytes", size)
	}
	if st := mountStatus(t, m.Dir); st.Capacity != 96<<20 {
		t.Errorf("status capacity %d after set --size 96M", st.Capacity)
	}
	if err := os.Chmod(filepath.Dir(m.Dir), 0o755); err != nil { // let nobody reach the mount
		t.Fatal(err)
	}
	bin := filepath.Join(publicBinary(t, "spoolfs"), "spoolfs")
	out, err := runAs(65534, 65534, m.Dir, bin+" set . --size 1G")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(out, "only root") {
		t.Errorf("spoolfs set as nobody: %v: %q, want exit 1 saying only root may", err, out)
	}
	if err := unix.Setxattr(m.Dir, control.AttrLimits, []byte("size=nonsense"), 0); !errors.Is(err, unix.EINVAL) {
		t.Errorf("setxattr of a bad value: %v, want EINVAL", err)
	}
	for _, bad := range [][]string{{"--size", "1x"}, {"--spill-threshold", "1G", "--ram", "1M"}, {}} {
		if code, _, stderr := runSpoolfs(t, append([]string{"set", m.Dir}, bad...)...); code != 2 || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("spoolfs set %v: exit %d, %q; want exit 2 and one line", bad, code, stderr)
		}
	}
	if size, _ := dfSize(t, m.Dir); size != 96<<20 {
		t.Fatalf("refused changes left df at %d bytes", size)
	}
}

// TestSetRAMMovesFilesToDisk: lowering --ram below what files hold in RAM
// moves files to disk until what is left fits; status shows it at once
// and every byte is still there.
func TestSetRAMMovesFilesToDisk(t *testing.T) {
	m := mountBinary(t, "--size", "256M", "--ram", "64M", "--spill-threshold", "16M")
	var want [][]byte
	for i := range 6 {
		data := randBytes(uint64(10+i), 8<<20)
		writeFile(t, filepath.Join(m.Dir, fmt.Sprint("f", i)), data)
		want = append(want, data)
	}
	before := mountStatus(t, m.Dir)
	if before.RAMUsed < 48<<20 || before.DiskUsed != 0 {
		t.Fatalf("before: %d bytes in RAM, %d on disk; want 48 MiB in RAM", before.RAMUsed, before.DiskUsed)
	}
	if code, _, stderr := runSpoolfs(t, "set", m.Dir, "--ram", "20M"); code != 0 {
		t.Fatalf("spoolfs set --ram 20M: exit %d: %s", code, stderr)
	}
	after := mountStatus(t, m.Dir)
	if after.RAMBudget != 20<<20 || after.RAMUsed > 20<<20 || after.DiskUsed < 28<<20 || after.SpilledFiles < 4 {
		t.Fatalf("after --ram 20M: budget %d, %d in RAM, %d on disk in %d files; want at most 20 MiB in RAM, the rest on disk",
			after.RAMBudget, after.RAMUsed, after.DiskUsed, after.SpilledFiles)
	}
	for i, data := range want {
		checkContent(t, filepath.Join(m.Dir, fmt.Sprint("f", i)), data)
	}
}

// TestSetInodesEnforced: a new inode limit holds at once (ENOSPC at it),
// and one below what is in use is refused.
func TestSetInodesEnforced(t *testing.T) {
	m := mountBinary(t, "--inodes", "1000")
	for i := range 10 {
		writeFile(t, filepath.Join(m.Dir, fmt.Sprint("f", i)), nil)
	}
	if code, _, stderr := runSpoolfs(t, "set", m.Dir, "--inodes", "20"); code != 0 {
		t.Fatalf("spoolfs set --inodes 20: exit %d: %s", code, stderr)
	}
	made := 0
	for ; made < 100; made++ {
		f, err := os.Create(filepath.Join(m.Dir, fmt.Sprint("g", made)))
		if err != nil {
			wantErrno(t, err, syscall.ENOSPC, "creating past the new inode limit")
			break
		}
		f.Close()
	}
	if made != 20-11 { // the root and 10 files were in use
		t.Errorf("created %d files under --inodes 20 with 11 in use, want 9", made)
	}
	code, _, stderr := runSpoolfs(t, "set", m.Dir, "--inodes", "5")
	if code != 1 || !strings.Contains(stderr, "below what is in use") {
		t.Errorf("spoolfs set --inodes 5 with 20 in use: exit %d: %q, want exit 1 saying why", code, stderr)
	}
	if _, inodes := dfSize(t, m.Dir); inodes != 20 {
		t.Errorf("df shows %d inodes after a refused shrink, want 20", inodes)
	}
}

// TestSetSessionCeiling: changed session defaults and ceilings apply to
// sessions made afterwards; a session that exists keeps its own.
func TestSetSessionCeiling(t *testing.T) {
	m := mountBinary(t, "--size", "64M", "--session-size", "1M", "--session-ttl", "2h")
	old := filepath.Join(m.Dir, "old")
	if err := os.Mkdir(old, 0o755); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runSpoolfs(t, "set", m.Dir, "--session-size", "50%", "--session-ttl", "1h")
	if code != 0 {
		t.Fatalf("spoolfs set --session-size 50%% --session-ttl 1h: exit %d: %s", code, stderr)
	}
	if want := "session_ttl 2h0m0s -> 1h0m0s, session_size 1.0 MiB -> 32 MiB"; strings.TrimSpace(stdout) != want {
		t.Errorf("spoolfs set printed %q, want %q", stdout, want)
	}
	young := filepath.Join(m.Dir, "new")
	if err := os.Mkdir(young, 0o755); err != nil {
		t.Fatal(err)
	}
	if got := getx(t, young, control.AttrSize); got != fmt.Sprint(32<<20) {
		t.Errorf("new session's size %s, want 32 MiB, half of --size", got)
	}
	if got := getx(t, young, control.AttrTTL); got != "1h0m0s" {
		t.Errorf("new session's ttl %s, want 1h0m0s", got)
	}
	if got := getx(t, old, control.AttrSize); got != fmt.Sprint(1<<20) {
		t.Errorf("existing session's size changed to %s", got)
	}
	if st := mountStatus(t, m.Dir); st.SessionDefaults.Bytes != 32<<20 || st.SessionDefaults.TTL.String() != "1h0m0s" {
		t.Errorf("status session_defaults %+v", st.SessionDefaults)
	}
}

// TestMemoryLimitFollowsRAMAndInodes: the Go memory limit, which makes
// the daemon collect and return memory, follows a --ram raised on the live
// mount and the inodes the daemon holds. Left at the mount's --ram plus a
// constant, a raised budget or a million small files put the heap past
// it and the daemon spent its time collecting (a million spilled files
// under --ram 16MiB took 638 s against 251 s).
func TestMemoryLimitFollowsRAMAndInodes(t *testing.T) {
	addr := freeLoopbackAddr(t)
	m := mountBinary(t, "--metrics", addr, "--ram", "16MiB", "--spill-threshold", "0")
	sc := &metricsScraper{url: "http://" + addr + "/metrics"}
	base := sc.get(t, "go_gc_gomemlimit_bytes")
	if base < 16<<20 || base > 64<<20 {
		t.Fatalf("memory limit %v with --ram 16MiB, want the budget plus a few MiB", base)
	}
	if code, _, stderr := runSpoolfs(t, "set", m.Dir, "--ram", "256MiB"); code != 0 {
		t.Fatalf("spoolfs set --ram 256MiB: exit %d: %s", code, stderr)
	}
	sc.waitFor(t, "the memory limit to follow --ram 256MiB", func(s metricSamples) bool {
		return s.value("go_gc_gomemlimit_bytes") >= base+240<<20
	})
	raised := sc.get(t, "go_gc_gomemlimit_bytes")
	const files = 5000 // each adds 2 KiB; a few, so that a loaded machine makes them in time
	dir := filepath.Join(m.Dir, "many")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range files {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprint(i)), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sc.waitFor(t, "the memory limit to count 5,000 inodes", func(s metricSamples) bool {
		return s.value("go_gc_gomemlimit_bytes") >= raised+files*1024
	})
}
