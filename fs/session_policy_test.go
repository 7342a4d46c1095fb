//go:build linux

package fs

// A session's policy: its quota, who may change what, and the mount's
// defaults for a new session.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/spoolfs/spoolfs/fs/control"
)

// TestSessionQuota: a session over its quota gets EDQUOT while its
// neighbour keeps writing; the mount's own limit still gives ENOSPC; statfs
// inside a session shows the session's limit.
func TestSessionQuota(t *testing.T) {
	m := mountSessions(t, sessOpts{size: 6 << 20})
	a, b := m.mkSession("a"), m.mkSession("b")
	m.setx(a, control.AttrSize, strconv.Itoa(1<<20))
	if got := m.sessGetx(a, control.AttrSize); got != "1048576" {
		t.Errorf("size %q", got)
	}

	var sfs unix.Statfs_t
	if err := unix.Statfs(a, &sfs); err != nil {
		t.Fatal(err)
	}
	if total := int64(sfs.Blocks) * sfs.Bsize; total != 1<<20 {
		t.Errorf("statfs in the session: %d blocks of %d = %d, want 1 MiB", sfs.Blocks, sfs.Bsize, total)
	}
	if err := unix.Statfs(m.dir, &sfs); err != nil {
		t.Fatal(err)
	}
	if total := int64(sfs.Blocks) * sfs.Bsize; total != 6<<20 {
		t.Errorf("statfs at the root: %d, want 6 MiB", total)
	}

	done := make(chan error, 1)
	go func() {
		f, err := os.Create(filepath.Join(b, "steady"))
		if err != nil {
			done <- err
			return
		}
		defer f.Close()
		chunk := make([]byte, 64<<10)
		for range 32 { // 2 MiB
			if _, err := f.Write(chunk); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	f, err := os.Create(filepath.Join(a, "big"))
	if err != nil {
		t.Fatal(err)
	}
	n, err := f.Write(make([]byte, 2<<20))
	f.Close()
	if !errors.Is(err, syscall.EDQUOT) {
		t.Errorf("writing 2 MiB into a 1 MiB session: %d bytes, %v; want EDQUOT", n, err)
	}
	if n > 1<<20 {
		t.Errorf("wrote %d bytes into a 1 MiB session", n)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("the neighbour's writes: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the neighbour's writes hung")
	}
	if err := unix.Statfs(a, &sfs); err != nil {
		t.Fatal(err)
	}
	if sfs.Bavail != 0 {
		t.Errorf("statfs in the full session: %d blocks available, want 0", sfs.Bavail)
	}
	// Programs ask about the file they write (df FILE, fstatfs on the
	// descriptor), and a subdirectory: the same figures.
	if err := os.Mkdir(filepath.Join(a, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(a, "big"), filepath.Join(a, "sub")} {
		if err := unix.Statfs(p, &sfs); err != nil {
			t.Fatal(err)
		}
		if total := int64(sfs.Blocks) * sfs.Bsize; total != 1<<20 || sfs.Bavail != 0 {
			t.Errorf("statfs %s: %d bytes in %d blocks of %d, %d available; want 1 MiB, 0 available",
				p, total, sfs.Blocks, sfs.Bsize, sfs.Bavail)
		}
	}
	if fd, err := os.Open(filepath.Join(a, "big")); err == nil {
		if err := unix.Fstatfs(int(fd.Fd()), &sfs); err != nil {
			t.Fatal(err)
		}
		if total := int64(sfs.Blocks) * sfs.Bsize; total != 1<<20 {
			t.Errorf("fstatfs of a file in the session: %d bytes in %d blocks of %d; want 1 MiB", total, sfs.Blocks, sfs.Bsize)
		}
		fd.Close()
	}

	// The neighbour has no limit of its own: the mount's gives ENOSPC.
	g, err := os.Create(filepath.Join(b, "fill"))
	if err != nil {
		t.Fatal(err)
	}
	n, err = g.Write(make([]byte, 6<<20))
	g.Close()
	m.waitOpens(m.mustSession("b"), 0)
	if !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("filling the mount from a session: %d bytes, %v; want ENOSPC", n, err)
	}
	if u := m.root.Usage(); u.Bytes > 6<<20 {
		t.Errorf("mount usage %d over its 6 MiB", u.Bytes)
	}

	// Raising the session's limit lets it write again.
	if err := os.Remove(filepath.Join(b, "fill")); err != nil {
		t.Fatal(err)
	}
	m.setx(a, control.AttrSize, strconv.Itoa(2<<20))
	sessWriteN(t, filepath.Join(a, "more"), 512<<10)

	// Inode quota: the session directory itself counts.
	m.setx(b, control.AttrInodes, "5")
	var made int
	for made = 0; made < 10; made++ {
		if err := os.WriteFile(filepath.Join(b, fmt.Sprintf("i%d", made)), nil, 0o644); err != nil {
			if !errors.Is(err, syscall.EDQUOT) {
				t.Errorf("inode quota: %v, want EDQUOT", err)
			}
			break
		}
	}
	if u := m.mustSession("b").acct.Usage(); u.Inodes != 5 {
		t.Errorf("session b holds %d inodes at its limit of 5 (made %d files)", u.Inodes, made)
	}
	if err := unix.Statfs(b, &sfs); err != nil {
		t.Fatal(err)
	}
	if sfs.Files != 5 || sfs.Ffree != 0 {
		t.Errorf("statfs inodes in session b: %d total, %d free; want 5, 0", sfs.Files, sfs.Ffree)
	}

	for _, s := range []string{a, b} {
		m.setx(s, control.AttrEnd, "1")
	}
	m.expire()
	m.waitBaseline()
}

// sessSetfattrAs runs setfattr as uid (and gid uid) and returns its stderr
// and exit error.
func sessSetfattrAs(uid uint32, args ...string) (string, error) {
	cmd := exec.Command("setfattr", args...)
	if uid != 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	}
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LC_ALL=C"}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	return stderr.String(), err
}

// TestSessionPolicyRules: who may change what.
func TestSessionPolicyRules(t *testing.T) {
	m := mountSessions(t, sessOpts{policy: control.SessionPolicy{TTL: 2 * time.Hour}})
	const user = 1000
	s := m.mkSession("rules")
	// World-writable, so that the kernel lets uid 1000 through to us and
	// it is spoolfs that must refuse.
	if err := os.Chmod(s, 0o777); err != nil {
		t.Fatal(err)
	}

	refuse := func(uid uint32, name, value, wantMsg string) {
		t.Helper()
		stderr, err := sessSetfattrAs(uid, "-n", name, "-v", value, s)
		if err == nil || !strings.Contains(stderr, wantMsg) {
			t.Errorf("uid %d: setfattr %s=%s: %v %q; want failure with %q", uid, name, value, err, stderr, wantMsg)
		}
	}
	allow := func(uid uint32, name, value string) {
		t.Helper()
		if stderr, err := sessSetfattrAs(uid, "-n", name, "-v", value, s); err != nil {
			t.Errorf("uid %d: setfattr %s=%s: %v %s", uid, name, value, err, stderr)
		}
	}
	const eperm, einval = "Operation not permitted", "Invalid argument"

	t.Run("non-owner", func(t *testing.T) {
		for _, name := range []string{control.AttrTTL, control.AttrIdle, control.AttrSize, control.AttrInodes, control.AttrEnd, control.AttrTouch} {
			refuse(user, name, "1h", eperm)
		}
		refuse(user, control.AttrPID, "1", eperm)
		if got := m.sessGetx(s, control.AttrTTL); got != "2h0m0s" {
			t.Errorf("ttl changed to %q by a non-owner", got)
		}
		m.expire()
		m.wantAlive("rules")
		// Anyone who can write the directory may still put files in it.
		cmd := exec.Command("sh", "-c", "echo hi > "+filepath.Join(s, "by-user"))
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: user, Gid: user}}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("uid %d writing in a 0777 session: %v %s", user, err, out)
		}
	})
	m.waitOpens(m.mustSession("rules"), 0) // or the end finds by-user still open

	if err := os.Chown(s, user, user); err != nil {
		t.Fatal(err)
	}
	t.Run("owner", func(t *testing.T) {
		allow(user, control.AttrTTL, "1h")
		if got := m.sessGetx(s, control.AttrTTL); got != "1h0m0s" {
			t.Errorf("ttl %q after the owner set 1h", got)
		}
		allow(user, control.AttrTTL, "2h")
		refuse(user, control.AttrTTL, "3h", eperm)
		refuse(user, control.AttrTTL, "2h0m1s", eperm)
		refuse(user, control.AttrTTL, "0", eperm)
		refuse(user, control.AttrTTL, "none", eperm)
		if got := m.sessGetx(s, control.AttrTTL); got != "2h0m0s" {
			t.Errorf("ttl %q after refused changes", got)
		}
		for _, bad := range []string{"-5s", "abc", "12x"} {
			refuse(user, control.AttrTTL, bad, einval)
			refuse(user, control.AttrIdle, bad, einval)
		}
		refuse(user, control.AttrSize, "abc", einval)
		refuse(user, control.AttrSize, "-1", einval)
		refuse(user, control.AttrInodes, "1.5", einval)
		// No ceiling on idle: the owner may set any.
		allow(user, control.AttrIdle, "48h")
		allow(user, control.AttrIdle, "0")
		allow(user, control.AttrSize, "1048576")
		allow(user, control.AttrTouch, "1")
		// Figures are read-only, for everyone.
		refuse(user, control.AttrUsage, "{}", eperm)
		refuse(user, control.AttrExpires, "never", eperm)
	})
	t.Run("root", func(t *testing.T) {
		allow(0, control.AttrTTL, "3h")
		if got := m.sessGetx(s, control.AttrTTL); got != "3h0m0s" {
			t.Errorf("ttl %q after root set 3h", got)
		}
		allow(0, control.AttrTTL, "0")
		if got := m.sessGetx(s, control.AttrTTL); got != "0s" {
			t.Errorf("ttl %q after root set 0", got)
		}
		if got := m.sessGetx(s, control.AttrExpires); got != "never" {
			t.Errorf("expires %q with no ttl and no idle", got)
		}
		for _, bad := range []string{"-5s", "abc", "12x"} {
			refuse(0, control.AttrTTL, bad, einval)
		}
		refuse(0, control.AttrUsage, "{}", eperm)
		refuse(0, control.AttrCreated, "x", eperm)
		refuse(0, control.Prefix+"bogus", "x", eperm)
		if err := unix.Setxattr(m.dir, control.AttrStatus, []byte("{}"), 0); !errors.Is(err, syscall.EPERM) {
			t.Errorf("setting the root's status: %v, want EPERM", err)
		}
		if err := unix.Setxattr(m.dir, control.AttrTTL, []byte("1h"), 0); !errors.Is(err, syscall.EPERM) {
			t.Errorf("setting a session attribute on the root: %v, want EPERM", err)
		}
	})
	t.Run("end by the owner", func(t *testing.T) {
		allow(user, control.AttrEnd, "1")
		m.expire()
		m.wantGone("rules")
		m.wantEndLog("rules", control.ReasonRemoved, 4096)
	})
	m.waitBaseline()
}

// TestSessionDefaults: mkdir at the root makes a session with the mount's
// policy.
func TestSessionDefaults(t *testing.T) {
	p := control.SessionPolicy{TTL: 2 * time.Hour, Idle: 30 * time.Minute, Bytes: 8 << 20, Inodes: 100}
	m := mountSessions(t, sessOpts{policy: p})
	t0 := m.clock.Now()
	s := m.mkSession("d")
	want := map[string]string{
		control.AttrTTL: "2h0m0s", control.AttrIdle: "30m0s", control.AttrSize: "8388608", control.AttrInodes: "100", control.AttrPID: "0",
		control.AttrReason: control.ReasonIdle, control.AttrExpires: sessRFC(t0.Add(30 * time.Minute)), control.AttrCreated: sessRFC(t0),
	}
	for name, v := range want {
		if got := m.sessGetx(s, name); got != v {
			t.Errorf("%s = %q, want %q", name, got, v)
		}
	}
	var sfs unix.Statfs_t
	if err := unix.Statfs(s, &sfs); err != nil {
		t.Fatal(err)
	}
	if total := int64(sfs.Blocks) * sfs.Bsize; total != 8<<20 || sfs.Files != 100 {
		t.Errorf("statfs: %d bytes, %d inodes; want 8 MiB, 100", total, sfs.Files)
	}
	// Every control attribute that listxattr names can be read, and the
	// policy is among them (cp -a carries it to a copy).
	buf := make([]byte, 4096)
	n, err := unix.Listxattr(s, buf)
	if err != nil {
		t.Fatal(err)
	}
	listed := strings.Split(strings.TrimSuffix(string(buf[:n]), "\x00"), "\x00")
	for _, name := range []string{control.AttrTTL, control.AttrIdle, control.AttrSize, control.AttrInodes} {
		if !slices.Contains(listed, name) {
			t.Errorf("listxattr lacks %s: %q", name, listed)
		}
	}
	for _, name := range listed {
		if _, err := sessGetx(s, name); err != nil {
			t.Errorf("listxattr names %s, which getxattr fails on: %v", name, err)
		}
	}
	// Made by another user, owned by that user, same defaults.
	cmd := exec.Command("mkdir", m.path("theirs"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 1000, Gid: 1000}}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mkdir as uid 1000: %v %s", err, out)
	}
	var st unix.Stat_t
	if err := unix.Stat(m.path("theirs"), &st); err != nil || st.Uid != 1000 {
		t.Errorf("session made by uid 1000: uid %d, %v", st.Uid, err)
	}
	if got := m.sessGetx(m.path("theirs"), control.AttrTTL); got != "2h0m0s" {
		t.Errorf("ttl of uid 1000's session: %q", got)
	}
	var status control.Status
	if err := json.Unmarshal([]byte(m.sessGetx(m.dir, control.AttrStatus)), &status); err != nil {
		t.Fatal(err)
	}
	if status.Sessions != 2 || status.SessionDefaults != p {
		t.Errorf("status: %d sessions, defaults %+v", status.Sessions, status.SessionDefaults)
	}
	m.advance(30*time.Minute + time.Second)
	m.wantGone("d")
	m.wantGone("theirs")
	m.waitBaseline()
}
