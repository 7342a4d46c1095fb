package test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/spoolfs/spoolfs/fs/mounts"
)

// installForMountHelper puts the binary where mount(8) finds it and returns
// the filesystem type that runs it. mount runs helpers with a fixed PATH, so
// fuse3's mount.fuse3 looks for the X of "fuse.X" in /usr/local/bin and the
// like, never in the test's PATH. The name is this run's own, so that the
// test runs this build and never one installed by hand or by a test run in
// another tree; the file is removed again.
func installForMountHelper(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("mount.fuse3"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("mount.fuse3 (package fuse3) is missing")
		}
		t.Skip("mount.fuse3 (package fuse3) is missing")
	}
	name := fmt.Sprintf("spoolfs-test-%d", os.Getpid())
	dst := "/usr/local/bin/" + name
	data, err := os.ReadFile(spoolfsBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(dst) })
	return "fuse." + name
}

// TestMountHelper: 'mount -t fuse.spoolfs' and an fstab line, through
// mount.fuse3, with spoolfs options and the generic ones mount(8) users
// write; noexec is honoured; umount deletes everything.
func TestMountHelper(t *testing.T) {
	requireFUSE(t)
	fstype := installForMountHelper(t)
	const opts = "size=64M,ram=32M,spill_threshold=4M,session_ttl=2h,allow_other,noexec,nosuid,nodev,noatime,_netdev,x-systemd.automount"
	for _, how := range []string{"mount -t", "fstab"} {
		t.Run(how, func(t *testing.T) {
			dir, spillDir := t.TempDir(), t.TempDir()
			all := opts + ",spill_dir=" + spillDir
			var cmd *exec.Cmd
			if how == "fstab" {
				fstab := filepath.Join(t.TempDir(), "fstab")
				line := "spoolfs " + dir + " " + fstype + " " + all + ",nofail 0 0\n"
				if err := os.WriteFile(fstab, []byte(line), 0o644); err != nil {
					t.Fatal(err)
				}
				cmd = exec.Command("mount", "--fstab", fstab, dir)
			} else {
				cmd = exec.Command("mount", "-t", fstype, "spoolfs", dir, "-o", all)
			}
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%v: %v\n%s", cmd.Args, err, out)
			}
			t.Cleanup(func() {
				if mounts.IsMounted(dir) {
					mounts.Unmount(dir)
				}
			})
			var st unix.Statfs_t
			if err := unix.Statfs(dir, &st); err != nil {
				t.Fatal(err)
			}
			if got := int64(st.Blocks) * st.Bsize; got != 64<<20 {
				t.Errorf("size %d, want 64 MiB", got)
			}
			if st.Flags&unix.ST_NOEXEC == 0 || st.Flags&unix.ST_NOSUID == 0 || st.Flags&unix.ST_NODEV == 0 {
				t.Errorf("mount flags %#x lack noexec, nosuid or nodev", st.Flags)
			}
			script := filepath.Join(dir, "run.sh")
			writeFile(t, script, []byte("#!/bin/sh\necho ran\n"))
			os.Chmod(script, 0o755)
			if err := exec.Command(script).Run(); !errors.Is(err, syscall.EACCES) {
				t.Errorf("executing from a noexec mount: %v, want EACCES", err)
			}
			if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
				t.Fatalf("umount: %v\n%s", err, out)
			}
			waitFor(t, 30*time.Second, "the daemon to delete everything", func() bool {
				entries, _ := os.ReadDir(spillDir)
				return len(entries) == 0
			})
			checkNothingLeft(t, dir, spillDir)
		})
	}
}

// TestMountHelperBadValue: a value that once read as "no limit" fails
// mount(8) and an fstab line too, with spoolfs's one line naming the
// option, and mounts nothing. It names the binary in the source
// ("PROGRAM#SOURCE", which mount.fuse3 runs as PROGRAM SOURCE MOUNTPOINT -o
// OPTIONS, as for fuse.spoolfs), so that it runs this build rather than
// whatever spoolfs is installed.
func TestMountHelperBadValue(t *testing.T) {
	requireFUSE(t)
	if _, err := exec.LookPath("mount.fuse3"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("mount.fuse3 (package fuse3) is missing")
		}
		t.Skip("mount.fuse3 (package fuse3) is missing")
	}
	source := spoolfsBinary(t) + "#spoolfs"
	for _, how := range []string{"mount -t", "fstab"} {
		t.Run(how, func(t *testing.T) {
			dir, spillDir := t.TempDir(), t.TempDir()
			opts := "size=NaN%,spill_dir=" + spillDir
			cmd := exec.Command("mount", "-t", "fuse", source, dir, "-o", opts)
			if how == "fstab" {
				fstab := filepath.Join(t.TempDir(), "fstab")
				if err := os.WriteFile(fstab, []byte(source+" "+dir+" fuse "+opts+" 0 0\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				cmd = exec.Command("mount", "--fstab", fstab, dir)
			}
			out, err := cmd.CombinedOutput()
			if mounts.IsMounted(dir) {
				mounts.Unmount(dir)
				t.Errorf("%v mounted %s", cmd.Args, dir)
			}
			if err == nil || !strings.Contains(string(out), `spoolfs mount: -o size: "NaN%"`) {
				t.Errorf("%v: %v, output %q; want a failure naming -o size", cmd.Args, err, out)
			}
		})
	}
}

// TestMountHelperSuidDev: through mount(8) and mount.fuse3, spoolfs is
// nosuid and nodev unless the administrator wrote suid or dev, on mount's
// command line or in fstab ("defaults" does not count). mount.fuse3 appends
// "dev,suid" to every option list without nodev and nosuid, and mount(8)
// passes neither an explicit suid nor dev on, so spoolfs used to end up with
// setuid programs and devices allowed on every mount(8) route.
func TestMountHelperSuidDev(t *testing.T) {
	requireFUSE(t)
	fstype := installForMountHelper(t)
	cases := []struct {
		name          string
		fstab, cmd    string // options in an fstab line (none: mount -t), and after mount -o
		nosuid, nodev bool
	}{
		{"mount -t", "", "size=64M", true, true},
		{"mount -t suid dev", "", "size=64M,suid,dev", false, false},
		{"mount -t dev", "", "dev,size=64M", true, false},
		{"mount -t nosuid then suid", "", "nosuid,suid", false, true},
		{"fstab", "defaults,size=64M,nofail", "", true, true},
		{"fstab suid", "size=64M,suid", "", false, true},
		{"fstab suid then mount -o nosuid", "suid", "nosuid", true, true},
		{"fstab nodev then mount -o dev", "nodev", "dev", true, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { // no comma in the name: it is in the paths in -o
			dir, spillDir := t.TempDir(), t.TempDir()
			args := []string{"-t", fstype, "spoolfs", dir, "-o", c.cmd + ",spill_dir=" + spillDir}
			if c.fstab != "" {
				fstab := filepath.Join(t.TempDir(), "fstab")
				line := "spoolfs " + dir + " " + fstype + " " + c.fstab + ",spill_dir=" + spillDir + " 0 0\n"
				if err := os.WriteFile(fstab, []byte(line), 0o644); err != nil {
					t.Fatal(err)
				}
				args = []string{"--fstab", fstab, dir}
				if c.cmd != "" {
					args = append(args, "-o", c.cmd)
				}
			}
			t.Cleanup(func() { checkNothingLeft(t, dir, spillDir) })
			t.Cleanup(func() { unmountAll(t, dir) })
			if out, err := exec.Command("mount", args...).CombinedOutput(); err != nil {
				t.Fatalf("mount %v: %v\n%s", args, err, out)
			}
			var st unix.Statfs_t
			if err := unix.Statfs(dir, &st); err != nil {
				t.Fatal(err)
			}
			if got := st.Flags&unix.ST_NOSUID != 0; got != c.nosuid {
				t.Errorf("mount %v: nosuid is %v, want %v", args, got, c.nosuid)
			}
			if got := st.Flags&unix.ST_NODEV != 0; got != c.nodev {
				t.Errorf("mount %v: nodev is %v, want %v", args, got, c.nodev)
			}
			if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
				t.Fatalf("umount: %v\n%s", err, out)
			}
		})
	}
}

// TestSystemdNotify runs the example unit's command as systemd would for
// Type=notify, listening on its own notify socket: READY=1 (with STATUS
// and MAINPID) once the mount answers, STOPPING=1 on SIGTERM, exit 0.
func TestSystemdNotify(t *testing.T) {
	requireFUSE(t)
	unit, err := os.ReadFile("../scripts/systemd/spoolfs-scratch.service")
	if err != nil {
		t.Fatal(err)
	}
	var execStart []string
	for _, line := range strings.Split(string(unit), "\n") {
		if rest, ok := strings.CutPrefix(line, "ExecStart="); ok {
			execStart = strings.Fields(rest)
		}
	}
	if len(execStart) < 3 || !strings.HasSuffix(execStart[0], "/spoolfs") || execStart[1] != "mount" {
		t.Fatalf("unexpected ExecStart in the example unit: %q", execStart)
	}
	dir, spillDir := t.TempDir(), t.TempDir()
	args := append(execStart[1:len(execStart)-1], "--spill-dir", spillDir, dir) // our mount point, not /run/scratch

	d := startDaemon(t, dir, nil, args...)
	ready := d.ready
	if !mounts.IsMounted(dir) {
		t.Error("READY=1 came before the mount answered")
	}
	for _, want := range []string{"STATUS=spoolfs mounted at " + dir, "MAINPID="} {
		if !strings.Contains(ready, want) {
			t.Errorf("READY message %q lacks %q", ready, want)
		}
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	d.notify.expect(t, "STOPPING=1")
	d.waitCleanExit(t)
	checkNothingLeft(t, dir, spillDir)
}

// startedDaemon is a spoolfs daemon a test started itself.
type startedDaemon struct {
	cmd    *exec.Cmd
	exited chan error // its exit status, once it has exited
	notify *notifyListener
	ready  string // its READY=1 message
}

// waitCleanExit waits for the daemon to exit, as it must once its mount
// is gone or it had SIGTERM, and checks that it exited 0.
func (d *startedDaemon) waitCleanExit(t testing.TB) {
	t.Helper()
	select {
	case err := <-d.exited:
		if err != nil {
			t.Errorf("daemon exited with %v, want 0", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the daemon did not exit")
	}
}

// startDaemon runs spoolfs with args (which mount dir), with a notify
// socket of the test's own, and returns once the daemon reported READY=1.
// Its stderr goes to stderr (nil: discarded). Cleanup unmounts dir if it is
// still mounted, so that a failed test leaves no mount behind, and kills
// the daemon.
func startDaemon(t *testing.T, dir string, stderr io.Writer, args ...string) *startedDaemon {
	t.Helper()
	return startBinary(t, spoolfsBinary(t), nil, dir, stderr, withTestTransport(args)...)
}

// startBinary is startDaemon with a build of spoolfs of the caller's
// choice (benchmarks run the build without -race) and env added to its
// environment.
func startBinary(t testing.TB, bin string, env []string, dir string, stderr io.Writer, args ...string) *startedDaemon {
	t.Helper()
	d := &startedDaemon{cmd: exec.Command(bin, args...), exited: make(chan error, 1), notify: listenNotify(t)}
	d.cmd.Env = append(d.notify.env(), env...)
	d.cmd.Stderr = stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.exited <- d.cmd.Wait() }()
	t.Cleanup(func() {
		if mounts.IsMounted(dir) {
			mounts.Unmount(dir)
		}
		d.cmd.Process.Kill()
	})
	d.ready = d.notify.expect(t, "READY=1")
	return d
}

// notifyListener is a NOTIFY_SOCKET of the test's own. A daemon started
// with its env sends READY=1 once the mount is ready for use, which is
// later than the mount showing in mountinfo: go-fuse still opens a file of
// the mount then (its poll hack), and an unmount meanwhile fails with EBUSY.
type notifyListener struct {
	sock     string
	messages chan string
}

func listenNotify(t testing.TB) *notifyListener {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	n := &notifyListener{sock: sock, messages: make(chan string, 16)}
	go func() {
		buf := make([]byte, 4096)
		for {
			got, _, err := conn.ReadFromUnix(buf)
			if err != nil {
				close(n.messages)
				return
			}
			n.messages <- string(buf[:got])
		}
	}()
	return n
}

// env is the environment for a daemon that should report to n.
func (n *notifyListener) env() []string {
	return append(os.Environ(), "NOTIFY_SOCKET="+n.sock)
}

// expect waits for a message with the line want, and returns the message.
func (n *notifyListener) expect(t testing.TB, want string) string {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case m, ok := <-n.messages:
			if !ok {
				t.Fatalf("notify socket closed before %s", want)
			}
			sc := bufio.NewScanner(strings.NewReader(m))
			for sc.Scan() {
				if sc.Text() == want {
					return m
				}
			}
		case <-deadline:
			t.Fatalf("no %s on the notify socket", want)
		}
	}
}
