package test

import (
	"errors"
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
)

// POSIX ACLs, as tmpfs has them: the kernel enforces them (FUSE_POSIX_ACL),
// spoolfs stores them, keeps them in step with the mode, and gives a new
// node its directory's default ACL. The tests drive getfacl and setfacl as
// an administrator would, through the daemon that spoolfs mount starts.

// aclMount mounts spoolfs through the binary and returns a directory in it,
// owned by root with mode 0755, that nobody can reach.
func aclMount(t *testing.T, extra ...string) string {
	t.Helper()
	requireTool(t, "setfacl")
	m := mountBinary(t, extra...)
	openMountToOthers(t, &testMount{Dir: m.Dir})
	dir := filepath.Join(m.Dir, "acl")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil { // whatever the umask
		t.Fatal(err)
	}
	return dir
}

func requireTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not installed (scripts/deps installs it)", name)
		}
		t.Skipf("%s is not installed (scripts/deps installs it)", name)
	}
}

// run runs a command as root with umask 022 and fails the test if it fails.
func run(t *testing.T, script string) string {
	t.Helper()
	out, err := exec.Command("/bin/sh", "-c", "umask 022 && "+script).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v: %s", script, err, out)
	}
	return strings.TrimSpace(string(out))
}

// aclOf is getfacl's numeric listing of p, without its header.
func aclOf(t *testing.T, p string) string {
	t.Helper()
	return run(t, "getfacl -cnp '"+p+"'")
}

func wantACL(t *testing.T, p string, want ...string) {
	t.Helper()
	if got := aclOf(t, p); got != strings.Join(want, "\n") {
		t.Errorf("getfacl %s:\n%s\nwant:\n%s", p, got, strings.Join(want, "\n"))
	}
}

// asNobody runs script as nobody in dir and reports whether it succeeded.
func asNobody(dir, script string) bool {
	_, err := runAs(nobody, nobody, dir, script)
	return err == nil
}

func wantMode(t *testing.T, p string, want uint32) {
	t.Helper()
	if got := lstat(t, p).Mode & 0o7777; got != want {
		t.Errorf("%s: mode %04o, want %04o", p, got, want)
	}
}

func TestACLGrantsAndRevokes(t *testing.T) {
	dir := aclMount(t)
	f := filepath.Join(dir, "f")
	if err := os.WriteFile(f, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if asNobody(dir, "cat f") {
		t.Fatal("nobody reads a mode 600 file with no ACL")
	}
	run(t, "setfacl -m u:nobody:r "+f)
	wantACL(t, f, "user::rw-", "user:65534:r--", "group::---", "mask::r--", "other::---")
	wantMode(t, f, 0o640) // the group bits show the mask
	if !asNobody(dir, "cat f") {
		t.Error("nobody cannot read with user:nobody:r")
	}
	if asNobody(dir, "echo x >> f") {
		t.Error("nobody writes with user:nobody:r")
	}
	if !strings.Contains(run(t, "getfattr -m - -d "+f), "system.posix_acl_access") {
		t.Error("listxattr does not list system.posix_acl_access")
	}

	run(t, "setfacl -x u:nobody "+f)
	if asNobody(dir, "cat f") {
		t.Error("nobody still reads once the entry is removed")
	}
	run(t, "setfacl -b "+f)
	wantACL(t, f, "user::rw-", "group::---", "other::---")
	wantMode(t, f, 0o600)
	if got := run(t, "getfattr -m - -d "+f); strings.Contains(got, "posix_acl") {
		t.Errorf("an ACL that the mode says all of is still stored:\n%s", got)
	}

	// Only the owner (or root) may set an ACL; the kernel says so.
	mine := filepath.Join(dir, "mine")
	run(t, "touch "+mine)
	if out, err := runAs(nobody, nobody, dir, "setfacl -m u:nobody:rw mine"); err == nil {
		t.Errorf("nobody set an ACL on root's file: %s", out)
	}
}

func TestACLDefaultIsInherited(t *testing.T) {
	dir := aclMount(t)
	shared := filepath.Join(dir, "shared")
	run(t, "mkdir "+shared+" && setfacl -d -m u:nobody:rwx "+shared)
	wantACL(t, shared, "user::rwx", "group::r-x", "other::r-x",
		"default:user::rwx", "default:user:65534:rwx", "default:group::r-x", "default:mask::rwx", "default:other::r-x")

	// Made by root with umask 022: a default ACL overrides the umask.
	run(t, "cd "+shared+" && echo data > f && mkdir sub && mkfifo fifo && ln -s f link")
	wantACL(t, filepath.Join(shared, "f"),
		"user::rw-", "user:65534:rwx\t#effective:rw-", "group::r-x\t#effective:r--", "mask::rw-", "other::r--")
	wantMode(t, filepath.Join(shared, "f"), 0o664)
	wantACL(t, filepath.Join(shared, "fifo"),
		"user::rw-", "user:65534:rwx\t#effective:rw-", "group::r-x\t#effective:r--", "mask::rw-", "other::r--")
	sub := filepath.Join(shared, "sub")
	wantACL(t, sub, "user::rwx", "user:65534:rwx", "group::r-x", "mask::rwx", "other::r-x",
		"default:user::rwx", "default:user:65534:rwx", "default:group::r-x", "default:mask::rwx", "default:other::r-x")
	wantMode(t, sub, 0o775)
	if !asNobody(shared, "echo more >> f && touch sub/g") {
		t.Error("the inherited ACL does not let nobody write")
	}
	// And it goes on down: sub's default made g.
	wantACL(t, filepath.Join(sub, "g"),
		"user::rw-", "user:65534:rwx\t#effective:rw-", "group::r-x\t#effective:r--", "mask::rw-", "other::r--")

	// A default ACL on a file is refused, as everywhere.
	if out, err := exec.Command("setfacl", "-d", "-m", "u:nobody:r", filepath.Join(shared, "f")).CombinedOutput(); err == nil {
		t.Errorf("a default ACL on a file was accepted: %s", out)
	}

	// With no default ACL the umask applies again.
	run(t, "setfacl -k "+shared+" && cd "+shared+" && touch plain && mkdir plaindir && mkfifo plainfifo")
	wantMode(t, filepath.Join(shared, "plain"), 0o644)
	wantMode(t, filepath.Join(shared, "plaindir"), 0o755)
	wantMode(t, filepath.Join(shared, "plainfifo"), 0o644)
	wantACL(t, filepath.Join(shared, "plain"), "user::rw-", "group::r--", "other::r--")
}

func TestACLFollowsChmod(t *testing.T) {
	dir := aclMount(t)
	f := filepath.Join(dir, "f")
	run(t, "echo hi > "+f+" && setfacl -m u:nobody:rw,g::r "+f)
	wantMode(t, f, 0o664)
	if !asNobody(dir, "echo x >> f") {
		t.Fatal("nobody cannot write with user:nobody:rw")
	}
	// chmod sets the mask, not the owning group's entry.
	run(t, "chmod 604 "+f)
	wantACL(t, f, "user::rw-", "user:65534:rw-\t#effective:---", "group::r--\t#effective:---", "mask::---", "other::r--")
	if asNobody(dir, "echo x >> f") {
		t.Error("nobody writes past a mask of ---")
	}
	run(t, "chmod 660 "+f)
	wantACL(t, f, "user::rw-", "user:65534:rw-", "group::r--", "mask::rw-", "other::---")
	if !asNobody(dir, "echo x >> f") {
		t.Error("nobody cannot write once chmod gives the mask back")
	}
}

func TestACLRestoreRoundTrip(t *testing.T) {
	dir := aclMount(t)
	run(t, "cd "+dir+" && mkdir -p a/b && touch a/f a/b/g && "+
		"setfacl -m u:nobody:rwx,g:nogroup:r a/f && setfacl -d -m g:nogroup:rx a/b && "+
		"setfacl -m u:daemon:x a && setfacl -m m::r a/b/g")
	before := run(t, "cd "+dir+" && getfacl -Rn a")
	run(t, "cd "+dir+" && setfacl -Rb a && chmod -R 700 a")
	if aclDump(t, dir) == sortedBlocks(before) {
		t.Fatal("setfacl -Rb changed nothing")
	}
	dump := filepath.Join(t.TempDir(), "dump")
	if err := os.WriteFile(dump, []byte(before+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, "cd "+dir+" && setfacl --restore="+dump)
	if after, want := aclDump(t, dir), sortedBlocks(before); after != want {
		t.Errorf("after setfacl --restore:\n%s\nwant:\n%s", after, want)
	}
}

// aclDump is getfacl -R of dir/a, one file's block after another in the
// order of their names: readdir's order is not stable.
func aclDump(t *testing.T, dir string) string {
	return sortedBlocks(run(t, "cd "+dir+" && getfacl -Rn a"))
}

func sortedBlocks(dump string) string {
	blocks := strings.Split(dump, "\n\n")
	slices.Sort(blocks)
	return strings.Join(blocks, "\n\n")
}

// TestACLIsChargedLikeXattrs: an ACL takes RAM in the daemon like any
// extended attribute, so it counts toward the quota and shows in st_blocks.
func TestACLIsChargedLikeXattrs(t *testing.T) {
	requireTool(t, "setfacl")
	m := newMount(t, withOpts(inRAM, func(o *mountOpts) { o.size = 64 << 10 }))
	f := m.path("f")
	writeFile(t, f, nil)
	var entries []string
	for uid := 1000; uid < 1100; uid++ { // 100 entries of 8 bytes
		entries = append(entries, "u:"+strconv.Itoa(uid)+":r")
	}
	run(t, "setfacl -m "+strings.Join(entries, ",")+" "+f)
	if got := lstat(t, f).Blocks; got < 2 {
		t.Errorf("st_blocks %d after an ACL of 800 bytes, want at least 2", got)
	}
	checkUsageMatchesTree(t, m)

	// Fill the mount, then try to store a larger ACL: refused, and the
	// old one is still there. The file's pages fill it to the last 4 KiB,
	// the attributes of another file to the last 512 bytes.
	fill, err := os.Create(m.path("fill"))
	if err != nil {
		t.Fatal(err)
	}
	defer fill.Close()
	for chunk := make([]byte, 4096); ; {
		if _, err := fill.Write(chunk); err != nil {
			wantErrno(t, err, syscall.ENOSPC, "filling the mount")
			break
		}
	}
	for i := 0; ; i++ {
		if err := unix.Setxattr(fill.Name(), "user.fill"+strconv.Itoa(i), make([]byte, 400), 0); err != nil {
			wantErrno(t, err, syscall.ENOSPC, "filling the mount with attributes")
			break
		}
	}
	var more []string
	for uid := 2000; uid < 2200; uid++ {
		more = append(more, "u:"+strconv.Itoa(uid)+":r")
	}
	out, err := exec.Command("setfacl", "-m", strings.Join(more, ","), f).CombinedOutput()
	if err == nil {
		t.Errorf("setfacl past the mount's size succeeded: %s", out)
	}
	if !strings.Contains(aclOf(t, f), "user:1099:r--") {
		t.Error("the ACL that was there is gone after a refused one")
	}
	fill.Close()
	os.Remove(m.path("fill"))
	checkUsageMatchesTree(t, m)
}

// TestBirthTime: statx reports when each node was made, and nothing done to
// it later changes that.
func TestBirthTime(t *testing.T) {
	m := mountBinary(t)
	sess := filepath.Join(m.Dir, "s") // a top-level directory is a session
	before := time.Now()
	if err := os.Mkdir(sess, 0o755); err != nil {
		t.Fatal(err)
	}
	p := func(name string) string { return filepath.Join(sess, name) }
	writeFile(t, p("file"), []byte("x"))
	if err := os.Mkdir(p("dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("file", p("link")); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(p("fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mknod(p("sock"), unix.S_IFSOCK|0o644, 0); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mknod(p("null"), unix.S_IFCHR|0o644, int(unix.Mkdev(1, 3))); err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	names := []string{"file", "dir", "link", "fifo", "sock", "null"}
	born := make(map[string]time.Time)
	for _, name := range append(names, ".") {
		bt, ok := btime(t, p(name))
		if !ok {
			t.Errorf("%s: statx has no birth time", name)
			continue
		}
		if bt.Before(before) || bt.After(after) {
			t.Errorf("%s: born %v, not between %v and %v", name, bt, before, after)
		}
		born[name] = bt
	}
	if bt, ok := btime(t, m.Dir); !ok || bt.After(before) {
		t.Errorf("the mount root: birth time %v (present: %v), want one before %v", bt, ok, before)
	}

	// Change everything that can change.
	run(t, "cd "+sess+" && echo more >> file && truncate -s 1M file && chmod 600 file dir fifo && "+
		"touch -d 2001-01-01 file dir fifo sock && touch -h link && mv dir dir2 && mv dir2 dir && "+
		"setfattr -n user.x -v y file && ln file hard && chown nobody null")
	for _, name := range names {
		if bt, ok := btime(t, p(name)); !born[name].IsZero() && (!ok || !bt.Equal(born[name])) {
			t.Errorf("%s: birth time went from %v to %v (present: %v)", name, born[name], bt, ok)
		}
	}
	if got := run(t, "stat -c %w "+p("file")); got == "-" {
		t.Errorf("stat -c %%w prints %q", got)
	}
}

// btime asks the daemon (not the kernel's cache) for p's birth time.
func btime(t *testing.T, p string) (time.Time, bool) {
	t.Helper()
	var st unix.Statx_t
	err := unix.Statx(unix.AT_FDCWD, p, unix.AT_SYMLINK_NOFOLLOW|unix.AT_STATX_FORCE_SYNC, unix.STATX_BASIC_STATS|unix.STATX_BTIME, &st)
	if err != nil {
		if errors.Is(err, unix.ENOSYS) {
			t.Skip("no statx")
		}
		t.Fatalf("statx %s: %v", p, err)
	}
	return time.Unix(st.Btime.Sec, int64(st.Btime.Nsec)), st.Mask&unix.STATX_BTIME != 0
}

// TestACLDropsSetgidOfOutsider: an owner outside a setgid file's group may
// not make it executable by the group through an ACL (CVE-2016-7097), as
// chmod would not let them; a member of the group, by a supplementary
// group too, may.
func TestACLDropsSetgidOfOutsider(t *testing.T) {
	dir := aclMount(t)
	const group = 1 // daemon
	for _, tc := range []struct {
		name   string
		groups []uint32
		want   uint32
	}{
		{"outsider", nil, 0o670},
		{"member", []uint32{group}, 0o2670},
	} {
		f := filepath.Join(dir, tc.name)
		run(t, "touch "+f+" && chown "+strconv.Itoa(nobody)+":"+strconv.Itoa(group)+" "+f+" && chmod 2640 "+f)
		cmd := exec.Command("setfacl", "-m", "g::rwx", f)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody, Groups: tc.groups}}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: setfacl: %v: %s", tc.name, err, out)
		}
		wantMode(t, f, tc.want)
	}
}
