package test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/spoolfs/spoolfs/fs/control"
)

// The attacks on extended attributes come from an unprivileged user, as in
// issue #10. The test binary itself is the attacker, re-executed: it drops
// to nobody before it reads a command (so it needs no copy of itself that
// nobody can read), and takes its paths relative to the directory it was
// started in, which it entered as root.

const xattrHelperEnv = "SPOOLFS_TEST_XATTR_HELPER"

const nobody = 65534

func init() {
	if os.Getenv(xattrHelperEnv) == "1" {
		os.Exit(xattrHelper(os.Stdin, os.Stdout))
	}
}

// xattrHelper becomes nobody and serves commands on in, one reply line
// each on out: "ok", or "err" and the errno's name.
//
//	set PATH NAME SIZE SEED   setxattr NAME to SIZE bytes of stream SEED
//	remove PATH NAME          removexattr
//	symlink PATH LEN          symlink PATH to a target of LEN bytes
//	create PATH               create an empty file
func xattrHelper(in io.Reader, out io.Writer) int {
	// syscall's Setuid and Setgid change every thread of the process.
	if err := syscall.Setgroups(nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := syscall.Setgid(nobody); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := syscall.Setuid(nobody); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		num := func(i int) int { n, _ := strconv.Atoi(f[i]); return n }
		var err error
		switch f[0] {
		case "set":
			err = unix.Setxattr(f[1], f[2], randBytes(uint64(num(4)), int64(num(3))), 0)
		case "remove":
			err = unix.Removexattr(f[1], f[2])
		case "symlink":
			err = unix.Symlink(strings.Repeat("t", num(2)), f[1])
		case "create":
			var fd int
			if fd, err = unix.Open(f[1], unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY, 0o644); err == nil {
				unix.Close(fd)
			}
		default:
			err = fmt.Errorf("unknown command %q", f[0])
		}
		switch e, ok := err.(syscall.Errno); {
		case err == nil:
			fmt.Fprintln(out, "ok")
		case ok:
			fmt.Fprintln(out, "err", unix.ErrnoName(e))
		default:
			fmt.Fprintln(out, "err", err)
		}
	}
	return 0
}

// attacker is a helper process running as nobody in a directory.
type attacker struct{ *helperChild }

// attackFrom starts an attacker in dir. Register it after the mount: its
// cleanup must run before the unmount.
func attackFrom(t testing.TB, dir string) *attacker {
	t.Helper()
	a := &attacker{startHelperChild(t, "attacker", xattrHelperEnv, dir)}
	t.Cleanup(func() { a.stop() })
	return a
}

// do runs one command and returns "" on success, else the errno's name.
func (a *attacker) do(format string, args ...any) string {
	a.t.Helper()
	if status, reply := a.ask(format, args...); status != "ok" {
		return reply
	}
	return ""
}

// must runs a command that has to succeed.
func (a *attacker) must(format string, args ...any) {
	a.t.Helper()
	if e := a.do(format, args...); e != "" {
		a.t.Fatalf("as nobody: %s: %s", fmt.Sprintf(format, args...), e)
	}
}

// xattrValueSize is the largest value Linux lets one store (XATTR_SIZE_MAX).
const xattrValueSize = 64 << 10

// statfsUsed is what df shows as used under p.
func statfsUsed(t testing.TB, p string) int64 {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(p, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Blocks-st.Bfree) * st.Bsize
}

// blocksBytes is what st_blocks says p holds, in bytes.
func blocksBytes(t testing.TB, p string) int64 {
	t.Helper()
	return lstat(t, p).Blocks * 512
}

// getxattrErr returns the error of getxattr of name on p, nil if it is there
// and holds want.
func getxattrErr(p, name string, want []byte) error {
	got := make([]byte, len(want)+1)
	n, err := unix.Lgetxattr(p, name, got)
	if err != nil {
		return err
	}
	if string(got[:n]) != string(want) {
		return fmt.Errorf("%s holds %d other bytes", name, n)
	}
	return nil
}

// TestXattrQuota: extended attributes and symlink targets count toward the
// byte quotas, of the mount (ENOSPC) and of a session (EDQUOT), like file
// data: the unprivileged user who fills a quota with them gets the error
// with nothing stored, df and st_blocks show what they hold, a replaced
// value is charged only the difference, and removing them gives it back.
func TestXattrQuota(t *testing.T) {
	const limit = 512 << 10 // below the per-inode cap: the quota is what refuses
	cases := []struct {
		name    string
		mount   int64  // the mount's size
		session bool   // work in a session limited to limit
		errno   string // the refusal at the limit
	}{
		{"mount", limit, false, "ENOSPC"},
		{"session", 0, true, "EDQUOT"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := newMount(t, withOpts(inRAM, func(o *mountOpts) { o.size = c.mount }))
			openMountToOthers(t, m)
			dir := m.path("work")
			if err := os.Mkdir(dir, 0o777); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, 0o777); err != nil {
				t.Fatal(err)
			}
			if c.session {
				if err := unix.Setxattr(dir, control.AttrSize, []byte(strconv.Itoa(limit)), 0); err != nil {
					t.Fatal(err)
				}
			}
			used := func() int64 { t.Helper(); return statfsUsed(t, dir) }
			a := attackFrom(t, dir)
			a.must("create f")
			f := filepath.Join(dir, "f")

			// Fill the quota with 64 KiB values, then top it up with small
			// ones, until refused.
			fill := func(prefix string, size int) (stored int) {
				t.Helper()
				for i := 0; ; i++ {
					if i > 4*limit/size {
						t.Fatalf("stored %d values of %d bytes under a %d-byte quota without a refusal", i, size, limit)
					}
					e := a.do("set f user.%s%d %d %d", prefix, i, size, size+i)
					if e == "" {
						continue
					}
					if e != c.errno {
						t.Errorf("setxattr of %d bytes past the quota: %s, want %s", size, e, c.errno)
					}
					if err := getxattrErr(f, fmt.Sprintf("user.%s%d", prefix, i), nil); err != unix.ENODATA {
						t.Errorf("the refused value: getxattr gives %v, want ENODATA (nothing stored)", err)
					}
					for j := range i {
						if err := getxattrErr(f, fmt.Sprintf("user.%s%d", prefix, j), randBytes(uint64(size+j), int64(size))); err != nil {
							t.Errorf("user.%s%d, stored before the refusal: %v", prefix, j, err)
						}
					}
					return i
				}
			}
			big := fill("v", xattrValueSize)
			small := fill("s", 512)
			full := used()
			if values := int64(big*xattrValueSize + small*512); full < values || full > limit || limit-full >= 4096 {
				t.Errorf("df says %d bytes used after %d bytes of values filled a %d-byte quota", full, values, limit)
			}
			if got := blocksBytes(t, f); got != full {
				t.Errorf("st_blocks of the file says %d bytes, df %d", got, full)
			}

			// On a full quota: replacing a value by one as large charges
			// nothing more; by a larger one, or a symlink, is refused and
			// changes nothing.
			a.must("set f user.v0 %d 100", xattrValueSize)
			if err := getxattrErr(f, "user.v0", randBytes(100, xattrValueSize)); err != nil {
				t.Errorf("replaced value: %v", err)
			}
			if e := a.do("set f user.s0 %d 101", xattrValueSize); e != c.errno {
				t.Errorf("growing a value on a full quota: %q, want %s", e, c.errno)
			}
			if err := getxattrErr(f, "user.s0", randBytes(512, 512)); err != nil {
				t.Errorf("the value a refused replace was for: %v", err)
			}
			if e := a.do("symlink l 4000"); e != c.errno {
				t.Errorf("symlink with a 4000-byte target on a full quota: %q, want %s", e, c.errno)
			}
			mustNotExist(t, filepath.Join(dir, "l"))
			if got := used(); got != full {
				t.Errorf("df says %d bytes used after refusals and a same-size replace, was %d", got, full)
			}

			// What a value held comes back when it goes, and the symlink fits.
			a.must("remove f user.v1")
			if got := used(); got > full-xattrValueSize {
				t.Errorf("removing a 64 KiB value: df %d -> %d bytes used", full, got)
			}
			a.must("symlink l 4000")
			if got := blocksBytes(t, filepath.Join(dir, "l")); got < 4000 {
				t.Errorf("a symlink to a 4000-byte target has st_blocks for %d bytes", got)
			}
			if c.session {
				var u control.SessionUsage
				if err := json.Unmarshal([]byte(getx(t, dir, control.AttrUsage)), &u); err != nil {
					t.Fatal(err)
				}
				if u.Bytes != used() || u.RAM+u.Disk != u.Bytes {
					t.Errorf("session usage %+v; df says %d bytes used", u, used())
				}
			}
			checkUsageMatchesTree(t, m)
			removeAll(t, dir)
			waitUsage(t, m, baseline)
			if s := m.FS.Pool().Stats(); s.RAMBytes != 0 {
				t.Errorf("the pool holds %d bytes of RAM once everything is gone", s.RAMBytes)
			}
		})
	}
}

// getx reads the extended attribute name of p.
func getx(t testing.TB, p, name string) string {
	t.Helper()
	buf := make([]byte, 64<<10)
	n, err := unix.Getxattr(p, name, buf)
	if err != nil {
		t.Fatalf("getxattr %s %s: %v", p, name, err)
	}
	return string(buf[:n])
}

// TestXattrMemory is issue #10's attack: an unprivileged user stores 16
// values of 64 KiB on each of 700 files of a mount with --size 64M
// --inodes 1000 --ram 32M. Extended attributes live in the daemon's RAM, so
// they count toward --ram: once it is full of them setxattr gets ENOSPC,
// df shows what they hold, and the daemon's peak RSS stays within the
// budget plus the overhead TestCLIMemoryTracksRAM allows.
func TestXattrMemory(t *testing.T) {
	const budgetMiB, overheadMiB, files, perFile = 32, 48, 700, 16
	m := mountWith(t, plainBinary.get(t), "--size", "64M", "--inodes", "1000", "--ram", "32M")
	a := attackFrom(t, m.Dir)
	stored, refusals := 0, map[string]int{}
	for i := range files {
		a.must("create f%d", i)
		for j := range perFile {
			if e := a.do("set f%d user.v%d %d %d", i, j, xattrValueSize, i*perFile+j); e != "" {
				refusals[e]++
			} else {
				stored++
			}
		}
	}
	hwm := statusKiB(t, m.PID, "VmHWM") >> 10
	storedMiB := stored * xattrValueSize >> 20
	t.Logf("stored %d MiB of values, refusals %v; peak RSS %d MiB with a %d MiB budget", storedMiB, refusals, hwm, budgetMiB)
	if len(refusals) != 1 || refusals["ENOSPC"] == 0 {
		t.Errorf("refusals %v, want ENOSPC only", refusals)
	}
	if storedMiB > budgetMiB || storedMiB < budgetMiB/2 {
		t.Errorf("stored %d MiB of values with a RAM budget of %d MiB", storedMiB, budgetMiB)
	}
	if hwm > budgetMiB+overheadMiB {
		t.Errorf("peak RSS %d MiB > budget %d MiB + overhead %d MiB", hwm, budgetMiB, overheadMiB)
	}
	df, err := strconv.ParseInt(strings.TrimSpace(strings.Split(sh(t, m.Dir, "df -B1 --output=used ."), "\n")[1]), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	if df < int64(stored*xattrValueSize) || df > budgetMiB<<20 {
		t.Errorf("df says %d bytes used with %d bytes of values stored", df, stored*xattrValueSize)
	}
	var status control.Status
	if err := json.Unmarshal([]byte(getx(t, m.Dir, control.AttrStatus)), &status); err != nil {
		t.Fatal(err)
	}
	// df counts in 4 KiB blocks.
	if status.RAMUsed != status.Used || status.Used > df || status.Used <= df-4096 {
		t.Errorf("status: %d bytes used, %d of them in RAM; df says %d", status.Used, status.RAMUsed, df)
	}
	// What was stored reads back; giving it up frees the RAM.
	for i := 0; i < stored/perFile; i += 50 {
		if err := getxattrErr(filepath.Join(m.Dir, fmt.Sprintf("f%d", i)), "user.v3", randBytes(uint64(i*perFile+3), xattrValueSize)); err != nil {
			t.Errorf("f%d: %v", i, err)
		}
	}
	for i := range files {
		if err := os.Remove(filepath.Join(m.Dir, fmt.Sprintf("f%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "RAM and df back to zero", func() bool {
		json.Unmarshal([]byte(getx(t, m.Dir, control.AttrStatus)), &status)
		return status.RAMUsed == 0 && statfsUsed(t, m.Dir) == 0
	})
}

// TestXattrChargeRaces: setxattr, replace and removexattr race on several
// files, and symlinks come and go beside them, under a quota they keep
// hitting: at the end what is charged is exactly what the tree holds (the
// quota, st_blocks and the RAM held agree), and removing it all gives back
// every byte.
func TestXattrChargeRaces(t *testing.T) {
	const size, workers, ops = 1 << 20, 8, 300
	m := newMount(t, withOpts(inRAM, func(o *mountOpts) { o.size = size }))
	files := []string{m.path("a"), m.path("b"), m.path("c")}
	for _, f := range files {
		writeFile(t, f, nil)
	}
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := range workers {
		wg.Go(func() {
			rnd := rand.New(rand.NewPCG(uint64(w), 1))
			link := m.path(fmt.Sprintf("l%d", w))
			for range ops {
				f, name := files[rnd.IntN(len(files))], fmt.Sprintf("user.%d", rnd.IntN(12))
				var err error
				switch rnd.IntN(4) {
				case 0, 1:
					err = unix.Setxattr(f, name, make([]byte, rnd.IntN(xattrValueSize+1)), 0)
				case 2:
					err = unix.Removexattr(f, name)
				case 3:
					if err = os.Symlink(strings.Repeat("t", 1+rnd.IntN(4000)), link); err == nil {
						err = os.Remove(link)
					}
				}
				if err != nil && !errors.Is(err, unix.ENOSPC) && !errors.Is(err, unix.ENODATA) {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	for w, err := range errs {
		if err != nil {
			t.Errorf("worker %d: %v", w, err)
		}
	}
	if u := m.Quota.Usage(); u.Bytes > size || u.Bytes < size/2 {
		t.Errorf("%d bytes used of a %d-byte mount that the workers kept filling", u.Bytes, size)
	}
	checkUsageMatchesTree(t, m)
	if held, used := m.FS.Pool().Stats().RAMBytes, m.Quota.Usage().Bytes; held != used {
		t.Errorf("the pool holds %d bytes of RAM for %d bytes of attributes", held, used)
	}
	for _, f := range files {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	waitUsage(t, m, baseline)
	if s := m.FS.Pool().Stats(); s.RAMBytes != 0 {
		t.Errorf("the pool holds %d bytes of RAM once everything is gone", s.RAMBytes)
	}
}

// TestXattrRAMBudget: extended attributes take their RAM from --ram, which
// file data shares. They push colder files to disk to make room, as a busier
// file would; once nothing is left to move, setxattr gets ENOSPC.
func TestXattrRAMBudget(t *testing.T) {
	const ram = 1 << 20
	m := newMount(t, mountOpts{threshold: ram, ram: ram})
	data := randBytes(1, 768<<10)
	writeFile(t, m.path("data"), data)
	writeFile(t, m.path("f"), nil)
	if s := m.FS.Pool().Stats(); s.DiskFiles != 0 || s.RAMBytes != int64(len(data)) {
		t.Fatalf("pool %+v: the file is not all in RAM", s)
	}
	var stored int
	var err error
	for ; err == nil; stored++ {
		if stored > 2*ram/xattrValueSize {
			t.Fatalf("%d values of 64 KiB with a RAM budget of %d bytes", stored, ram)
		}
		err = unix.Setxattr(m.path("f"), fmt.Sprintf("user.%d", stored), randBytes(uint64(stored), xattrValueSize), 0)
	}
	stored--
	wantErrno(t, err, syscall.ENOSPC, "setxattr with the RAM budget full of attributes")
	s := m.FS.Pool().Stats()
	if s.DiskFiles != 1 || s.RAMBytes > ram || s.RAMBytes < ram-xattrValueSize-4096 {
		t.Errorf("pool %+v after %d values of 64 KiB: want the file on disk and the budget full", s, stored)
	}
	if s.RAMBytes != m.Quota.Usage().Bytes-int64(len(data)) {
		t.Errorf("the pool holds %d bytes of RAM; the quota charges %d beside the file", s.RAMBytes, m.Quota.Usage().Bytes-int64(len(data)))
	}
	checkContent(t, m.path("data"), data)
	for i := range stored {
		if err := getxattrErr(m.path("f"), fmt.Sprintf("user.%d", i), randBytes(uint64(i), xattrValueSize)); err != nil {
			t.Errorf("user.%d: %v", i, err)
		}
	}
	removeAll(t, m.path("f"))
	removeAll(t, m.path("data"))
	waitUsage(t, m, baseline)
}
