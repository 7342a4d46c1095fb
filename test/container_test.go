package test

import (
	"archive/tar"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/spoolfs/spoolfs/fs/control"
	"github.com/spoolfs/spoolfs/fs/fusetest"
)

// The README's container recipe, run with a real container runtime:
// podman, rootful and rootless, with an image built here from
// busybox-static and a static spoolfs (nothing can be pulled in CI).
//
// Each test drives its own podman: storage, run state, events and network
// configuration live in one temporary directory, named by CONTAINERS_CONF
// and CONTAINERS_STORAGE_CONF, so the machine's containers configuration
// does not change what runs and the test leaves nothing behind.

// staticBinary is a CGO_ENABLED=0 build of cmd/spoolfs: the image has no
// C library for a dynamically linked one.
var staticBinary struct {
	once sync.Once
	path string
	err  error
}

func spoolfsStatic(t testing.TB) string {
	t.Helper()
	staticBinary.once.Do(func() {
		staticBinary.path = filepath.Join(binDir, "spoolfs-static")
		cmd := exec.Command("go", "build", "-o", staticBinary.path, "../cmd/spoolfs")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			staticBinary.err = fmt.Errorf("go build (static): %v\n%s", err, out)
		}
	})
	if staticBinary.err != nil {
		t.Fatal(staticBinary.err)
	}
	return staticBinary.path
}

// requirePodman skips the test when podman, runc or a static busybox is
// missing, or fails it under CI=true (scripts/deps installs them).
func requirePodman(t *testing.T) (busybox string) {
	t.Helper()
	requireFUSE(t)
	var missing []string
	for _, tool := range []string{"podman", "runc"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	busybox, err := exec.LookPath("busybox")
	if err != nil || !isStatic(busybox) {
		missing = append(missing, "busybox-static")
	}
	if len(missing) == 0 {
		return busybox
	}
	why := "container tests need " + strings.Join(missing, ", ") + " (scripts/deps installs them)"
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true but %s", why)
	}
	t.Skip(why)
	return ""
}

// isStatic says whether the ELF file at p runs without a dynamic loader.
func isStatic(p string) bool {
	f, err := elf.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return false
		}
	}
	return true
}

// podman runs podman as uid:gid (0:0 is rootful) with everything it keeps
// under dir.
type podman struct {
	t        *testing.T
	dir      string
	uid, gid uint32
	env      []string
	runFlags []string // for every podman run
	cgroup   string   // rootful: the cgroup parent of the test's containers
}

func newPodman(t *testing.T, uid, gid uint32) *podman {
	t.Helper()
	// Not t.TempDir: under its longer name a path of podman's passes the
	// 108 bytes a socket address holds, and every rootless container
	// then takes 20 s (podman's conmon timeout) to be seen exiting.
	dir, err := os.MkdirTemp("", "podman")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) }) // after everything below
	p := &podman{t: t, dir: dir, uid: uid, gid: gid}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	at := func(elem string) string { return filepath.Join(p.dir, elem) }
	// runc, not crun (podman's default here): crun refuses a hybrid cgroup
	// layout whose cgroup2 tree has a controller, as on this CI machine.
	// cgroupfs: there may be no systemd. vfs: it works on any backing
	// filesystem, and the image is 3 MB.
	files := map[string]string{
		"containers.conf": fmt.Sprintf(`[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = %q
tmp_dir = %q
[network]
network_config_dir = %q
`, at("events.log"), at("tmp"), at("networks")),
		"storage.conf":    fmt.Sprintf("[storage]\ndriver = \"vfs\"\ngraphroot = %q\nrunroot = %q\n", at("root"), at("run")),
		"registries.conf": "", // nothing to pull from
	}
	// In podman's own config directory, $XDG_CONFIG_HOME/containers, and
	// named by the variables that override it.
	for _, d := range []string{"home", "xdg", "config/containers", "data"} {
		if err := os.MkdirAll(at(d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for name, text := range files {
		writeFile(t, at("config/containers/"+name), []byte(text))
	}
	if err := filepath.Walk(p.dir, func(path string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, int(uid), int(gid))
	}); err != nil {
		t.Fatal(err)
	}
	p.env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C",
		"CONTAINERS_CONF=" + at("config/containers/containers.conf"),
		"CONTAINERS_STORAGE_CONF=" + at("config/containers/storage.conf"),
		"CONTAINERS_REGISTRIES_CONF=" + at("config/containers/registries.conf"),
		"HOME=" + at("home"), "XDG_RUNTIME_DIR=" + at("xdg"), "XDG_CONFIG_HOME=" + at("config"), "XDG_DATA_HOME=" + at("data")}
	if uid == 0 {
		p.rootful()
	}
	t.Cleanup(p.cleanup)
	return p
}

// rootful sets what podman run needs as root here, and what to remove
// after.
func (p *podman) rootful() {
	t := p.t
	// Without CAP_SYS_RESOURCE (as in some CI VMs) the runtime cannot raise
	// limits past their hard values, and podman's defaults for root
	// (1048576 files) are above them: ask for the limits we have, and no
	// more than podman's 32768 processes (asking for our own 96365 here
	// failed: podman lowers its own limit).
	var nofile, nproc unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &nofile); err != nil {
		t.Fatal(err)
	}
	if err := unix.Getrlimit(unix.RLIMIT_NPROC, &nproc); err != nil {
		t.Fatal(err)
	}
	nproc.Cur = min(nproc.Cur, 32768)
	p.cgroup = "/spoolfs-test-" + filepath.Base(p.dir)
	p.runFlags = []string{"--cgroup-parent", p.cgroup,
		"--ulimit", fmt.Sprintf("nofile=%d:%d", nofile.Cur, nofile.Cur),
		"--ulimit", fmt.Sprintf("nproc=%d:%d", nproc.Cur, nproc.Cur)}
	// Registered before p.cleanup, so that it runs after it.
	removeIfNew(t, "/var/lib/containers/cache/blob-info-cache-v1.boltdb", "/var/lib/containers/cache",
		"/var/lib/containers", "/run/containers/networks", "/run/containers")
}

// removeIfNew removes, at cleanup, those of paths (files or empty
// directories, innermost first) that do not exist yet: rootful podman makes
// its image blob cache and netavark's run directory there whatever its
// configuration says.
func removeIfNew(t *testing.T, paths ...string) {
	var made []string
	for _, p := range paths {
		if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
			made = append(made, p)
		}
	}
	t.Cleanup(func() {
		for _, p := range made {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Errorf("removing what podman left: %v", err)
			}
		}
	})
}

// argv is the command line that runs podman with args as p's user, in
// p's environment alone.
func (p *podman) argv(args ...string) []string {
	var argv []string
	if p.uid != 0 {
		argv = []string{"setpriv", fmt.Sprintf("--reuid=%d", p.uid), fmt.Sprintf("--regid=%d", p.gid), "--clear-groups"}
	}
	argv = append(append(argv, "env", "-i"), p.env...)
	return append(append(argv, "podman"), args...)
}

// run runs podman to the end, with a deadline, and returns its output.
func (p *podman) run(args ...string) (string, error) {
	p.t.Helper()
	argv := p.argv(args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	var out fusetest.LogBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	timer := time.AfterFunc(3*time.Minute, func() { cmd.Process.Kill() })
	defer timer.Stop()
	err := cmd.Wait()
	return strings.TrimSpace(out.String()), err
}

func (p *podman) must(args ...string) string {
	p.t.Helper()
	out, err := p.run(args...)
	if err != nil {
		p.t.Fatalf("podman %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// cleanup removes containers and images, stops the pause process
// rootless podman keeps to hold its user namespace (found before the reset,
// which removes its pid file), and removes the test's cgroups.
func (p *podman) cleanup() {
	pause := 0
	if data, err := os.ReadFile(filepath.Join(p.dir, "tmp", "pause.pid")); err == nil {
		fmt.Sscan(string(data), &pause)
	}
	if out, err := p.run("rm", "--all", "--force", "--time", "0"); err != nil {
		p.t.Errorf("podman rm: %v\n%s", err, out)
	}
	if out, err := p.run("system", "reset", "--force"); err != nil {
		p.t.Errorf("podman system reset: %v\n%s", err, out)
	}
	if pause > 1 {
		syscall.Kill(pause, syscall.SIGKILL)
	}
	if p.cgroup != "" {
		removeCgroups(p.t, p.cgroup)
	}
}

// importImage makes an image of busybox, its applets and the static
// spoolfs, and returns its name.
func (p *podman) importImage(busybox string) string {
	p.t.Helper()
	tarball := filepath.Join(p.dir, "rootfs.tar")
	writeRootfs(p.t, tarball, busybox, spoolfsStatic(p.t))
	if err := os.Chown(tarball, int(p.uid), int(p.gid)); err != nil {
		p.t.Fatal(err)
	}
	const image = "localhost/spoolfs-test:latest"
	p.must("import", tarball, image)
	return image
}

// writeRootfs writes a root filesystem tarball: /bin/busybox with the
// applets the tests use as symlinks, /bin/spoolfs, and empty mount points.
func writeRootfs(t testing.TB, tarball, busybox, spoolfs string) {
	t.Helper()
	f, err := os.Create(tarball)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	add := func(h *tar.Header, data []byte) {
		h.ModTime = time.Unix(0, 0)
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"bin", "dev", "etc", "proc", "sys", "tmp"} {
		add(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755}, nil)
	}
	for name, src := range map[string]string{"bin/busybox": busybox, "bin/spoolfs": spoolfs} {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		add(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o755, Size: int64(len(data))}, data)
	}
	for _, applet := range []string{"sh", "cat", "dd", "echo", "ls", "mkdir", "sleep", "test", "["} {
		add(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + applet, Linkname: "busybox"}, nil)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// containerScript runs in the container with a session as its /tmp: it
// writes, fills the session past its quota, asks spoolfs about /tmp, then
// waits (up to a deadline of its own) for the session to end from
// outside, and says what it sees after.
const containerScript = `
echo hello > /tmp/hello && cat /tmp/hello
mkdir /tmp/sub && echo inner > /tmp/sub/f
dd if=/dev/zero of=/tmp/big bs=64k count=32 2>&1; echo "DD $?"
echo LS; spoolfs session ls /tmp --json; echo END
echo STATUS; spoolfs status /tmp --json; echo END
echo TEXT; spoolfs session ls /tmp; spoolfs status /tmp; echo END
echo READY
i=0
while [ -e /tmp/hello ]; do
	i=$((i+1)); [ $i -lt 1800 ] || { echo "TIMEOUT"; exit 3; }
	sleep 0.1
done
echo "AFTER [$(ls -A /tmp)]"
if echo x > /tmp/after; then echo "WRITE ok"; else echo "WRITE refused"; fi
echo ALIVE
`

// TestContainerPodman: a session bound as a podman container's /tmp
// (the README's recipe) takes writes up to its quota, which the container
// sees as EDQUOT; spoolfs session ls and status work inside; and ending the
// session while the container runs empties its /tmp, refuses new files
// there and leaves the container running to exit on its own, status 0.
func TestContainerPodman(t *testing.T) {
	busybox := requirePodman(t)
	sessFastExit(t)
	m := mountBinary(t) // by root: --allow-other is on, as rootless podman needs
	// The mount's parent, for the rootless user.
	if err := os.Chmod(filepath.Dir(m.Dir), 0o755); err != nil {
		t.Fatal(err)
	}

	t.Run("rootful", func(t *testing.T) {
		p := newPodman(t, 0, 0)
		image := p.importImage(busybox)
		newSession := func() string { return sessNew(t, m.Dir, "--size", "1MiB") }
		runInContainer(t, p, m, newSession, 0, image)
	})

	t.Run("rootless", func(t *testing.T) {
		const uid, gid = 65534, 65534 // nobody: on every machine
		p := newPodman(t, uid, gid)
		// Rootless podman needs an unprivileged user namespace; without
		// subordinate ids in /etc/subuid it maps the user alone, as root
		// in the container, which is all this test needs.
		if out, err := p.run("unshare", "true"); err != nil {
			t.Skipf("rootless podman cannot run here (user namespaces for uid %d refused): %v: %s", uid, err, out)
		}
		image := p.importImage(busybox)
		pub := sessPublicBinary(t)
		newSession := func() string {
			out, err := runAs(uid, gid, "/", fmt.Sprintf("%q session new %q --size 1MiB", pub, m.Dir))
			if err != nil {
				t.Fatalf("session new as uid %d: %v: %s", uid, err, out)
			}
			return out
		}
		runInContainer(t, p, m, newSession, uid, image)

		// Another user's session (0700, root's) stays closed to it: podman
		// binds it, but nothing in it can be listed, read or made.
		theirs := sessNew(t, m.Dir)
		writeFile(t, filepath.Join(theirs, "secret"), []byte("x"))
		out, err := p.run("run", "--rm", "--network", "none", "--volume", theirs+":/tmp", image,
			"sh", "-c", "ls /tmp; cat /tmp/secret; echo x > /tmp/mine")
		if err == nil || strings.Count(out, "Permission denied") != 3 {
			t.Errorf("a rootless container of uid %d with root's session as /tmp: %v\n%s\nwant 3 refusals", uid, err, out)
		}
		if names := listNames(t, theirs); len(names) != 1 {
			t.Errorf("root's session holds %q after the container", names)
		}
	})
}

// removeCgroups removes the cgroups podman and runc made under parent in
// every hierarchy, innermost first: podman leaves its conmon cgroup.
func removeCgroups(t *testing.T, parent string) {
	t.Helper()
	tops, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", parent))
	more, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup/*", parent))
	for _, top := range append(tops, more...) {
		var dirs []string
		filepath.WalkDir(top, func(p string, e os.DirEntry, err error) error {
			if err == nil && e.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := os.Remove(dirs[i]); err != nil {
				t.Errorf("removing the test's cgroup: %v", err)
			}
		}
	}
}

// runInContainer runs containerScript in a container with a session made
// by newSession (a 1 MiB one, of owner) as /tmp, and checks what it says
// inside and what the mount sees outside.
func runInContainer(t *testing.T, p *podman, m *binaryMount, newSession func() string, owner uint32, image string) {
	t.Helper()
	before := sessStatus(t, m.Dir).Mount
	d := newSession()
	args := append([]string{"run", "--rm", "--network", "none", "--volume", d + ":/tmp"}, p.runFlags...)
	args = append(args, image)
	s := startCommand(t, nil, p.argv(append(args, "sh", "-c", containerScript)...)...)

	if got := s.next(); got != "hello" {
		t.Fatalf("cat of a file written in the container's /tmp: %q; stderr:\n%s", got, s.stderr.String())
	}
	var dd []string
	for l := s.next(); l != "LS"; l = s.next() {
		dd = append(dd, l)
	}
	if text := strings.Join(dd, "\n"); !strings.Contains(text, "Disk quota exceeded") || strings.HasSuffix(text, "DD 0") {
		t.Errorf("dd of 2 MiB into a 1 MiB session in the container:\n%s\nwant it refused with EDQUOT", text)
	}
	var ls []control.SessionInfo
	if out := strings.Join(s.until("END"), "\n"); json.Unmarshal([]byte(out), &ls) != nil || len(ls) != 1 {
		t.Errorf("spoolfs session ls /tmp --json in the container:\n%s\nwant the one session", out)
	} else if got := ls[0]; got.Owner != 0 || got.Size != 1<<20 || got.Usage.Bytes == 0 || got.Usage.Bytes > 1<<20 || got.Usage.Inodes != 5 {
		t.Errorf("session seen in the container: %+v; want owner 0 (stat's view: the container's root is the owner), size 1 MiB, 5 inodes, at most 1 MiB used", got)
	}
	if s.next() != "STATUS" {
		t.Fatal("script out of step")
	}
	var st control.StatusReport
	if out := strings.Join(s.until("END"), "\n"); json.Unmarshal([]byte(out), &st) != nil || st.Mount != nil || len(st.Sessions) != 1 {
		t.Errorf("spoolfs status /tmp --json in the container:\n%s\nwant the session and not the mount", out)
	}
	if s.next() != "TEXT" {
		t.Fatal("script out of step")
	}
	if text := strings.Join(s.until("END"), "\n"); strings.Count(text, "1.0 MiB") != 2 {
		t.Errorf("spoolfs session ls and status in the container:\n%s\nwant the session's 1.0 MiB limit in both tables", text)
	}
	if s.next() != "READY" {
		t.Fatal("script out of step")
	}

	// What the container wrote is in the session, seen from the host.
	checkContent(t, filepath.Join(d, "sub", "f"), []byte("inner\n"))
	if info := sessFind(sessLs(t, m.Dir), filepath.Base(d)); info == nil || info.Owner != owner || info.Usage.Bytes > 1<<20 || info.Usage.Inodes != 5 {
		t.Errorf("session seen from the host: %+v", info)
	}

	// End it while the container runs: its /tmp is emptied and takes no
	// new files, and the container goes on; spoolfs ends sessions, not
	// processes.
	sessCLI(t, "session", "rm", d)
	if got := s.next(); got != "AFTER []" {
		t.Errorf("the container's /tmp after the session ended: %q, want empty", got)
	}
	if got := s.next(); got != "WRITE refused" {
		t.Errorf("creating a file in the ended session: %q, want it refused", got)
	}
	if got := s.next(); got != "ALIVE" {
		t.Errorf("after the session ended the container said %q", got)
	}
	s.wait()
	// busybox sh's words for ENOENT on a create.
	if stderr := s.stderr.String(); !strings.Contains(stderr, "can't create /tmp/after: nonexistent directory") {
		t.Errorf("creating a file in the ended session: want ENOENT; stderr:\n%s", stderr)
	}
	mustNotExist(t, d)
	waitFor(t, 30*time.Second, "the session's space to come back", func() bool {
		st := sessStatus(t, m.Dir).Mount
		return st.Used == before.Used && st.Sessions == before.Sessions
	})
	if out := p.must("ps", "--all", "--quiet"); out != "" {
		t.Errorf("containers left after podman run --rm: %s", out)
	}
}
