package test

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/spoolfs/spoolfs/fs/control"
)

// Two unprivileged users share each mount of these tests.
const (
	alice = 4242
	bob   = 65534
)

const edquot = "Disk quota exceeded"

// setUserLimits writes the root's user_limits attribute, as root.
func setUserLimits(t testing.TB, dir, value string) {
	t.Helper()
	if err := unix.Setxattr(dir, control.AttrUserLimits, []byte(value), 0); err != nil {
		t.Fatalf("setxattr %s %s: %v", control.AttrUserLimits, value, err)
	}
}

// userUsage reads user.spoolfs.users: what each listed uid owns.
func userUsage(t testing.TB, dir string) map[uint32]control.UserUsage {
	t.Helper()
	buf := make([]byte, 64<<10)
	n, err := unix.Getxattr(dir, control.AttrUsers, buf)
	if err != nil {
		t.Fatalf("getxattr %s: %v", control.AttrUsers, err)
	}
	var list []control.UserUsage
	if err := json.Unmarshal(buf[:n], &list); err != nil {
		t.Fatalf("%s: %v", buf[:n], err)
	}
	out := make(map[uint32]control.UserUsage)
	for _, u := range list {
		out[u.UID] = u
	}
	return out
}

// waitUserUsage waits until uid owns exactly bytes and inodes: a last
// close frees asynchronously.
func waitUserUsage(t testing.TB, dir string, uid uint32, bytes, inodes int64) {
	t.Helper()
	var got control.UserUsage
	eventually(t, fmt.Sprintf("uid %d owning %d bytes, %d inodes", uid, bytes, inodes), func() bool {
		got = userUsage(t, dir)[uid]
		return got.Bytes == bytes && got.Inodes == inodes
	})
	if got.Bytes != bytes || got.Inodes != inodes {
		t.Errorf("uid %d owns %d bytes, %d inodes; want %d, %d", uid, got.Bytes, got.Inodes, bytes, inodes)
	}
}

// fillAs writes 16 KiB blocks to name as uid until the write fails, and
// returns dd's output and error.
func fillAs(uid uint32, dir, name string, blocks int) (string, error) {
	return runAs(uid, uid, dir, fmt.Sprintf("dd if=/dev/zero of=%s bs=16k count=%d 2>&1", name, blocks))
}

func fileSize(t testing.TB, p string) int64 {
	t.Helper()
	return lstat(t, p).Size
}

// TestUserQuotaOwnLimits gives two users limits of their own: each gets
// EDQUOT at its own limit while the other still writes, and status lists
// both with what they own.
func TestUserQuotaOwnLimits(t *testing.T) {
	tiers(t, func(t *testing.T, o mountOpts) {
		m := newMount(t, o)
		openMountToOthers(t, m)
		setUserLimits(t, m.Dir, fmt.Sprintf(`{"%d":{"size_limit":262144,"inodes_limit":0},"%d":{"size_limit":1048576,"inodes_limit":4}}`, alice, bob))
		for _, uid := range []uint32{alice, bob} {
			if out, err := runAs(uid, uid, m.Dir, fmt.Sprintf("mkdir s%d", uid)); err != nil {
				t.Fatalf("mkdir as %d: %v: %s", uid, err, out)
			}
		}
		out, err := fillAs(alice, m.path("s4242"), "f", 64)
		if err == nil || !strings.Contains(out, edquot) {
			t.Fatalf("alice wrote 1 MiB past her 256 KiB limit: %v: %s", err, out)
		}
		if got := fileSize(t, m.path("s4242", "f")); got != 256<<10 {
			t.Errorf("alice's file is %d bytes, want what fit: %d", got, 256<<10)
		}
		// Bob is not held back by alice being full.
		if out, err := fillAs(bob, m.path("s65534"), "f", 48); err != nil {
			t.Fatalf("bob, within his limit, could not write: %v: %s", err, out)
		}
		if out, err := fillAs(bob, m.path("s65534"), "g", 64); err == nil || !strings.Contains(out, edquot) {
			t.Fatalf("bob wrote past his 1 MiB limit: %v: %s", err, out)
		}
		waitUserUsage(t, m.Dir, alice, 256<<10, 2)
		waitUserUsage(t, m.Dir, bob, 1<<20, 3)
		// Bob's inode limit: a session dir and two files; one more fits.
		if out, err := runAs(bob, bob, m.path("s65534"), "touch h && touch i"); err == nil || !strings.Contains(out, edquot) {
			t.Fatalf("bob made a 5th inode past his limit of 4: %v: %s", err, out)
		}
		mustExist(t, m.path("s65534", "h"))
		mustNotExist(t, m.path("s65534", "i"))
		u := userUsage(t, m.Dir)
		if a := u[alice]; !a.Own || a.SizeLimit != 256<<10 || a.InodesLimit != 0 {
			t.Errorf("alice listed as %+v", a)
		}
		// Taking the limit away lets alice write again.
		setUserLimits(t, m.Dir, fmt.Sprintf(`{"%d":null}`, alice))
		if out, err := fillAs(alice, m.path("s4242"), "g", 16); err != nil {
			t.Fatalf("alice, with no limit left, could not write: %v: %s", err, out)
		}
		if a, ok := userUsage(t, m.Dir)[alice]; !ok || a.Own || a.SizeLimit != 0 {
			t.Errorf("alice after her limits were taken away: %+v (listed %v)", a, ok)
		}
		checkUsageMatchesTree(t, m)
	})
}

// TestUserQuotaLimitsOnlyRoot: only root sets limits, and nonsense is
// refused with EINVAL, changing nothing.
func TestUserQuotaLimitsOnlyRoot(t *testing.T) {
	m := newMount(t, inRAM)
	openMountToOthers(t, m)
	if out, err := runAs(alice, alice, m.Dir, `setfattr -n user.spoolfs.user_limits -v '{"4242":null}' . 2>&1`); err == nil {
		t.Fatalf("a user changed user limits: %s", out)
	}
	for _, bad := range []string{`{"x":{}}`, `{"1":{"size_limit":-1}}`, `[]`, `{"1":{"size":1}}`} {
		err := unix.Setxattr(m.Dir, control.AttrUserLimits, []byte(bad), 0)
		wantErrno(t, err, syscall.EINVAL, "user_limits "+bad)
	}
	if u := userUsage(t, m.Dir); len(u) != 0 {
		t.Errorf("after refused writes, users: %+v", u)
	}
}

// TestUserQuotaChown: chown by root moves the whole charge to the new
// owner, and is refused with EDQUOT, changing nothing, when the new owner
// has no room for it.
func TestUserQuotaChown(t *testing.T) {
	tiers(t, func(t *testing.T, o mountOpts) {
		m := newMount(t, o)
		openMountToOthers(t, m)
		setUserLimits(t, m.Dir, fmt.Sprintf(`{"%d":{"size_limit":196608,"inodes_limit":0}}`, bob))
		if out, err := runAs(alice, alice, m.Dir, "mkdir s && dd if=/dev/zero of=s/a bs=64k count=2 2>&1 && dd if=/dev/zero of=s/b bs=64k count=2 2>&1"); err != nil {
			t.Fatalf("alice: %v: %s", err, out)
		}
		waitUserUsage(t, m.Dir, alice, 256<<10, 3)
		if err := os.Chown(m.path("s", "a"), bob, bob); err != nil {
			t.Fatalf("chown of 128 KiB to bob, who may own 192 KiB: %v", err)
		}
		waitUserUsage(t, m.Dir, alice, 128<<10, 2)
		waitUserUsage(t, m.Dir, bob, 128<<10, 1)
		err := os.Chown(m.path("s", "b"), bob, bob)
		wantErrno(t, err, syscall.EDQUOT, "chown of 128 KiB more to bob")
		if st := lstat(t, m.path("s", "b")); st.Uid != alice || st.Gid != alice {
			t.Errorf("refused chown changed the owner to %d:%d", st.Uid, st.Gid)
		}
		waitUserUsage(t, m.Dir, alice, 128<<10, 2)
		waitUserUsage(t, m.Dir, bob, 128<<10, 1)
		// A chown of the group alone moves nothing and is not refused.
		if err := os.Chown(m.path("s", "b"), -1, bob); err != nil {
			t.Errorf("chgrp: %v", err)
		}
		// What bob now owns grows on his account: 64 KiB more fit.
		if out, err := runAs(bob, bob, m.path("s"), "dd if=/dev/zero of=a bs=64k count=2 seek=2 conv=notrunc 2>&1"); err == nil || !strings.Contains(out, edquot) {
			t.Errorf("bob grew a file past his limit: %v: %s", err, out)
		}
		// Back to alice, who has no limit: always fits.
		if err := os.Chown(m.path("s", "a"), alice, alice); err != nil {
			t.Fatalf("chown back to alice: %v", err)
		}
		waitUserUsage(t, m.Dir, bob, 0, 0)
		checkUsageMatchesTree(t, m)
	})
}

// TestUserQuotaAndSessionQuota: a file counts against its session and its
// owner at once, and whichever is full first refuses; unlink gives back
// to both; a file with several names counts once.
func TestUserQuotaAndSessionQuota(t *testing.T) {
	tiers(t, func(t *testing.T, o mountOpts) {
		m := newMount(t, o)
		openMountToOthers(t, m)
		setUserLimits(t, m.Dir, fmt.Sprintf(`{"%d":{"size_limit":393216,"inodes_limit":0}}`, alice))
		out, err := runAs(alice, alice, m.Dir, "mkdir small big && setfattr -n user.spoolfs.size -v 131072 small")
		if err != nil {
			t.Fatalf("alice: %v: %s", err, out)
		}
		// The session's 128 KiB is hit first.
		if out, err := fillAs(alice, m.path("small"), "f", 64); err == nil || !strings.Contains(out, edquot) {
			t.Fatalf("alice wrote past the session's quota: %v: %s", err, out)
		}
		if got := fileSize(t, m.path("small", "f")); got != 128<<10 {
			t.Errorf("session file is %d bytes, want %d", got, 128<<10)
		}
		// Then her own 384 KiB: 256 KiB more fit in the unlimited session.
		if out, err := fillAs(alice, m.path("big"), "f", 64); err == nil || !strings.Contains(out, edquot) {
			t.Fatalf("alice wrote past her own quota: %v: %s", err, out)
		}
		if got := fileSize(t, m.path("big", "f")); got != 256<<10 {
			t.Errorf("file in the unlimited session is %d bytes, want %d", got, 256<<10)
		}
		waitUserUsage(t, m.Dir, alice, 384<<10, 4)
		// Hard links count once, and unlink frees both levels.
		if out, err := runAs(alice, alice, m.path("big"), "ln f g && ln f h"); err != nil {
			t.Fatalf("ln: %v: %s", err, out)
		}
		waitUserUsage(t, m.Dir, alice, 384<<10, 4)
		if out, err := runAs(alice, alice, m.path("big"), "rm f g h"); err != nil {
			t.Fatalf("rm: %v: %s", err, out)
		}
		waitUserUsage(t, m.Dir, alice, 128<<10, 3)
		var usage string
		eventually(t, "the session to be empty", func() bool {
			b := make([]byte, 512)
			n, _ := unix.Getxattr(m.path("big"), control.AttrUsage, b)
			usage = string(b[:max(n, 0)])
			return strings.HasPrefix(usage, `{"bytes":0,"inodes":1,`)
		})
		// The room freed is hers to use again.
		if out, err := fillAs(alice, m.path("big"), "f", 16); err != nil {
			t.Fatalf("alice could not reuse the space freed: %v: %s", err, out)
		}
		checkUsageMatchesTree(t, m)
	})
}

// TestUserQuotaConcurrent has two users fill and empty files at the same
// time as root moves files between them: the per-user figures must end
// exactly at what each one's files hold, and at zero once all are gone.
func TestUserQuotaConcurrent(t *testing.T) {
	tiers(t, func(t *testing.T, o mountOpts) {
		m := newMount(t, o)
		openMountToOthers(t, m)
		setUserLimits(t, m.Dir, fmt.Sprintf(`{"%d":{"size_limit":1048576,"inodes_limit":40},"%d":{"size_limit":1048576,"inodes_limit":40}}`, alice, bob))
		if err := os.Mkdir(m.path("s"), 0o777); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(m.path("s"), 0o1777); err != nil { // past the umask
			t.Fatal(err)
		}
		var writers, chowner sync.WaitGroup
		var moved atomic.Int64
		done := make(chan struct{})
		for _, uid := range []uint32{alice, bob} {
			writers.Go(func() {
				// EDQUOT is expected here and there; only the figures count.
				script := fmt.Sprintf(`for i in $(seq 1 40); do
					dd if=/dev/zero of=u%[1]d-$i bs=16k count=$((i %% 7 + 1)) 2>/dev/null
					ln u%[1]d-$i u%[1]d-$i.l 2>/dev/null
					if [ $((i %% 3)) -eq 0 ]; then rm -f u%[1]d-$((i-1)) u%[1]d-$((i-1)).l; fi
				done; true`, uid)
				if out, err := runAs(uid, uid, m.path("s"), script); err != nil {
					t.Errorf("uid %d: %v: %s", uid, err, out)
				}
			})
		}
		chowner.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				entries, _ := os.ReadDir(m.path("s"))
				for j, e := range entries {
					to := []int{alice, bob}[(i+j)%2]
					if os.Lchown(m.path("s", e.Name()), to, to) == nil { // EDQUOT or ENOENT are fine
						moved.Add(1)
					}
				}
			}
		})
		writers.Wait()
		close(done)
		chowner.Wait()
		// Every uid owns exactly what its files hold.
		want := map[uint32][2]int64{}
		seen := map[uint64]bool{}
		entries, err := os.ReadDir(m.path("s"))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			st := lstat(t, m.path("s", e.Name()))
			if seen[st.Ino] {
				continue
			}
			seen[st.Ino] = true
			w := want[st.Uid]
			want[st.Uid] = [2]int64{w[0] + st.Blocks*512, w[1] + 1}
		}
		if moved.Load() == 0 || len(seen) == 0 {
			t.Fatalf("nothing to check: %d chowns, %d files left", moved.Load(), len(seen))
		}
		for _, uid := range []uint32{alice, bob} {
			waitUserUsage(t, m.Dir, uid, want[uid][0], want[uid][1])
		}
		if err := os.RemoveAll(m.path("s")); err != nil {
			t.Fatal(err)
		}
		for _, uid := range []uint32{alice, bob} {
			waitUserUsage(t, m.Dir, uid, 0, 0)
		}
		checkUsageMatchesTree(t, m)
	})
}

// TestUserQuotaDefault mounts the binary with --user-size and
// --user-inodes: every uid but root gets them, status shows the users,
// and a bad value is a usage error.
func TestUserQuotaDefault(t *testing.T) {
	bm := mountBinary(t, "--size", "64M", "--user-size", "256K", "--user-inodes", "3")
	openMountToOthers(t, &testMount{Dir: bm.Dir})
	for _, uid := range []uint32{alice, bob} {
		if out, err := runAs(uid, uid, bm.Dir, fmt.Sprintf("mkdir s%d", uid)); err != nil {
			t.Fatalf("mkdir as %d: %v: %s", uid, err, out)
		}
	}
	if out, err := fillAs(alice, bm.Dir+"/s4242", "f", 64); err == nil || !strings.Contains(out, edquot) {
		t.Fatalf("alice wrote past the default of 256 KiB: %v: %s", err, out)
	}
	if out, err := fillAs(bob, bm.Dir+"/s65534", "f", 8); err != nil {
		t.Fatalf("bob, within the default, could not write while alice was full: %v: %s", err, out)
	}
	if out, err := runAs(bob, bob, bm.Dir+"/s65534", "touch g && touch h"); err == nil || !strings.Contains(out, edquot) {
		t.Fatalf("bob made a 4th inode past the default of 3: %v: %s", err, out)
	}
	// Root is exempt from the default.
	if out, err := fillAs(0, bm.Dir, "rootfile", 64); err != nil {
		t.Fatalf("root was held to the default: %v: %s", err, out)
	}
	code, stdout, stderr := runSpoolfs(t, "status", "--json", bm.Dir)
	if code != 0 {
		t.Fatalf("status --json: exit %d: %s", code, stderr)
	}
	var report control.StatusReport
	if err := json.Unmarshal([]byte(stdout), &report); err != nil {
		t.Fatalf("status --json: %v: %s", err, stdout)
	}
	if report.Mount == nil || report.Mount.UserDefaults != (control.UserLimit{Bytes: 256 << 10, Inodes: 3}) {
		t.Errorf("status --json mount: %+v", report.Mount)
	}
	byUID := map[uint32]control.UserUsage{}
	for _, u := range report.Users {
		byUID[u.UID] = u
	}
	if a := byUID[alice]; a.Bytes != 256<<10 || a.Inodes != 2 || a.SizeLimit != 256<<10 || a.InodesLimit != 3 || a.Own {
		t.Errorf("alice in status --json: %+v", a)
	}
	if b := byUID[bob]; b.Bytes != 128<<10 || b.Inodes != 3 {
		t.Errorf("bob in status --json: %+v", b)
	}
	if r := byUID[0]; r.Bytes != 1<<20 || r.SizeLimit != 0 {
		t.Errorf("root in status --json: %+v", r)
	}
	code, stdout, stderr = runSpoolfs(t, "status", bm.Dir)
	if code != 0 || !strings.Contains(stdout, "USER") || !strings.Contains(stdout, "256 KiB") {
		t.Errorf("status: exit %d, no per-user table:\n%s%s", code, stdout, stderr)
	}
	// user-limit raises alice's own limit above the default, and
	// --default gives her the default back.
	if code, _, stderr := runSpoolfs(t, "user-limit", bm.Dir, "4242", "--size", "512K"); code != 0 {
		t.Fatalf("user-limit: exit %d: %s", code, stderr)
	}
	if a := userUsage(t, bm.Dir)[alice]; !a.Own || a.SizeLimit != 512<<10 || a.InodesLimit != 0 {
		t.Errorf("alice after user-limit --size 512K: %+v", a)
	}
	if out, err := fillAs(alice, bm.Dir+"/s4242", "g", 16); err != nil {
		t.Errorf("alice could not use her raised limit: %v: %s", err, out)
	}
	if code, _, stderr := runSpoolfs(t, "user-limit", bm.Dir, "4242", "--default"); code != 0 {
		t.Fatalf("user-limit --default: exit %d: %s", code, stderr)
	}
	if a := userUsage(t, bm.Dir)[alice]; a.Own || a.SizeLimit != 256<<10 {
		t.Errorf("alice after user-limit --default: %+v", a)
	}
	for _, bad := range [][]string{{bm.Dir, "4242"}, {bm.Dir, "4242", "--size", "1M", "--default"},
		{bm.Dir, "no-such-user-here", "--size", "1M"}, {bm.Dir, "4242", "--size", "10%"}, {bm.Dir}} {
		args := append([]string{"user-limit"}, bad...)
		if code, _, stderr := runSpoolfs(t, args...); code != 2 || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("%v: exit %d, stderr %q; want 2 and one line", args, code, stderr)
		}
	}
	if code, _, stderr := runSpoolfs(t, "user-limit", bm.Dir+"/s4242", "4242", "--size", "1M"); code != 1 || !strings.Contains(stderr, "root") {
		t.Errorf("user-limit on a session: exit %d, %q; want 1 and why", code, stderr)
	}
	// The end of a session, files and all, gives its owner everything back.
	if code, _, stderr := runSpoolfs(t, "session", "rm", bm.Dir+"/s4242"); code != 0 {
		t.Fatalf("session rm: exit %d: %s", code, stderr)
	}
	waitUserUsage(t, bm.Dir, alice, 0, 0)
	for _, bad := range [][]string{{"--user-size", "-1"}, {"--size", "0", "--user-size", "10%"}, {"--user-inodes", "x"}, {"--size", "1M", "--user-size", "2M"}} {
		args := append(append([]string{"mount"}, bad...), t.TempDir())
		if code, _, stderr := runSpoolfs(t, args...); code != 2 || strings.Count(strings.TrimSpace(stderr), "\n") != 0 || !strings.Contains(stderr, "--") {
			t.Errorf("mount %v: exit %d, stderr %q; want 2 and one line", bad, code, stderr)
		}
	}
}
