package test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestShutdownWithWritesInFlight: SIGTERM, SIGINT or 'spoolfs umount -l'
// while writers stream into the mount: the writers finish or fail (they
// never hang), a second signal during shutdown changes nothing, the mount
// goes away, the spill directory is empty and the daemon exits 0.
func TestShutdownWithWritesInFlight(t *testing.T) {
	requireFUSE(t)
	for _, how := range []string{"SIGTERM", "SIGINT", "umount"} {
		t.Run(how, func(t *testing.T) {
			dir, spillDir := t.TempDir(), t.TempDir()
			d := startDaemon(t, dir, nil, "mount", "-f", "--spill-threshold", "1MiB", "--ram", "16MiB", "--spill-dir", spillDir, dir)

			var writers []*exec.Cmd
			for i := range 4 {
				w := exec.Command("dd", "if=/dev/zero", "of="+filepath.Join(dir, "w"+strconv.Itoa(i)), "bs=64k", "count=100000", "status=none")
				if err := w.Start(); err != nil {
					t.Fatal(err)
				}
				writers = append(writers, w)
			}
			waitFor(t, 30*time.Second, "writes in flight", func() bool {
				st, err := os.Stat(filepath.Join(dir, "w3"))
				return err == nil && st.Size() > 4<<20
			})
			sig := map[string]os.Signal{"SIGTERM": syscall.SIGTERM, "SIGINT": os.Interrupt}
			if s, ok := sig[how]; ok {
				d.cmd.Process.Signal(s)
				d.cmd.Process.Signal(s) // a second signal during shutdown
			} else if code, _, stderr := runSpoolfs(t, "umount", "-l", dir); code != 0 {
				t.Fatalf("umount -l: exit %d: %s", code, stderr)
			}
			d.waitCleanExit(t)
			for i, w := range writers {
				done := make(chan error, 1)
				go func() { done <- w.Wait() }()
				select {
				case <-done: // a writer cut off fails; one that finished succeeds
				case <-time.After(30 * time.Second):
					w.Process.Kill()
					t.Errorf("writer %d hung after shutdown", i)
				}
			}
			checkNothingLeft(t, dir, spillDir)
		})
	}
}

// TestRAMPressure: many concurrent writers under a small RAM budget. The
// daemon's RSS stays under the budget plus a fixed overhead, nothing is
// lost, and everything reads back.
func TestRAMPressure(t *testing.T) {
	const budgetMiB, overheadMiB = 32, 48
	m := mountWith(t, plainBinary.get(t), "--ram", "32MiB", "--spill-threshold", "8MiB")
	const writers, files, size = 16, 6, 3 << 20
	sums := make([][sha256.Size]byte, writers*files)
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range files {
				n := w*files + i
				data := randBytes(uint64(n), size)
				sums[n] = sha256.Sum256(data)
				if err := os.WriteFile(filepath.Join(m.Dir, "f"+strconv.Itoa(n)), data, 0o644); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	hwm := statusKiB(t, m.PID, "VmHWM") >> 10
	t.Logf("peak RSS %d MiB, RAM budget %d MiB, %d MiB written by %d writers", hwm, budgetMiB, writers*files*size>>20, writers)
	if hwm > budgetMiB+overheadMiB {
		t.Errorf("peak RSS %d MiB > budget %d + overhead %d MiB", hwm, budgetMiB, overheadMiB)
	}
	for n, want := range sums {
		f, err := os.Open(filepath.Join(m.Dir, "f"+strconv.Itoa(n)))
		if err != nil {
			t.Fatal(err)
		}
		dropCache(t, f)
		h := sha256.New()
		io.Copy(h, f)
		f.Close()
		if [sha256.Size]byte(h.Sum(nil)) != want {
			t.Errorf("file %d changed", n)
		}
	}
}

// loadWorkerEnv makes the test binary a load worker (see loadWorker).
const loadWorkerEnv = "SPOOLFS_LOAD_WORKER"

func init() {
	if dir := os.Getenv(loadWorkerEnv); dir != "" {
		seconds, _ := strconv.Atoi(os.Getenv("SPOOLFS_LOAD_SECONDS"))
		os.Exit(loadWorker(dir, time.Duration(seconds)*time.Second, os.Stdout))
	}
}

// openRandom opens name read-only as a random reader (fio among them)
// does: FADV_RANDOM, so that readahead leaves its reads as small as asked.
func openRandom(name string) (*os.File, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_RANDOM); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// randomReads reads a few pages of name at random, as a random reader does.
func randomReads(name string, r *rand.Rand) error {
	f, err := openRandom(name)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() < 4096 {
		return err
	}
	buf := make([]byte, 4096)
	for range 8 {
		if _, err := f.ReadAt(buf, r.Int64N(fi.Size()/4096)*4096); err != nil {
			return err
		}
	}
	return nil
}

// loadWorker runs mixed operations in dir until the time is up and checks
// every file it reads against what it wrote. It prints "ok OPS" or one
// line per unexpected error, and exits non-zero on any.
func loadWorker(dir string, d time.Duration, out io.Writer) int {
	r := rand.New(rand.NewPCG(uint64(os.Getpid()), 1))
	want := map[string][sha256.Size]byte{}
	bad := 0
	fail := func(format string, args ...any) {
		bad++
		fmt.Fprintf(out, format+"\n", args...)
	}
	expected := func(err error) bool {
		return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
	}
	ops := 0
	for end := time.Now().Add(d); time.Now().Before(end) && bad < 10; ops++ {
		name := filepath.Join(dir, "f"+strconv.Itoa(r.IntN(40)))
		switch op := r.IntN(10); {
		case op < 4: // create or replace with new contents
			data := make([]byte, r.IntN(512<<10))
			newStream(r.Uint64()).fill(data)
			if err := os.WriteFile(name, data, 0o644); err != nil {
				if !expected(err) {
					fail("write %s: %v", name, err)
				}
				delete(want, name)
				os.Remove(name)
				continue
			}
			want[name] = sha256.Sum256(data)
		case op < 7: // read back and check
			sum, ok := want[name]
			if !ok {
				continue
			}
			if op == 6 {
				// Small random reads first: the daemon answers those
				// by filling the page cache, and the check below then
				// reads what the fill stored, while a later rewrite
				// may race a fill still running.
				if err := randomReads(name, r); err != nil {
					fail("random reads of %s: %v", name, err)
				}
			}
			data, err := os.ReadFile(name)
			if err != nil {
				fail("read %s: %v", name, err)
			} else if sha256.Sum256(data) != sum {
				fail("read %s: contents differ", name)
			}
		case op == 7: // rename
			to := filepath.Join(dir, "f"+strconv.Itoa(r.IntN(40)))
			if _, ok := want[name]; !ok || to == name {
				continue
			}
			if err := os.Rename(name, to); err != nil {
				fail("rename %s: %v", name, err)
				continue
			}
			want[to] = want[name]
			delete(want, name)
		case op == 8: // unlink
			if err := os.Remove(name); err != nil && !errors.Is(err, os.ErrNotExist) {
				fail("unlink %s: %v", name, err)
			}
			delete(want, name)
		default: // readdir: every file we own is listed
			entries, err := os.ReadDir(dir)
			if err != nil {
				fail("readdir: %v", err)
				continue
			}
			seen := map[string]bool{}
			for _, e := range entries {
				seen[filepath.Join(dir, e.Name())] = true
			}
			for n := range want {
				if !seen[n] {
					fail("readdir: %s missing", n)
				}
			}
		}
	}
	if bad > 0 {
		return 1
	}
	fmt.Fprintf(out, "ok %d\n", ops)
	return 0
}

// TestLoad: 32 processes doing mixed create/write/read/rename/unlink/readdir
// with checksums against one mount, in RAM and spilled, with a quota that
// is hit now and then. No error but ENOSPC/EDQUOT, no mismatch; afterwards
// no leaked descriptor or goroutine, and RAM, disk and quota back to
// baseline once the files are deleted. SPOOLFS_LOAD_SECONDS sets how long
// (default 15).
func TestLoad(t *testing.T) {
	seconds := os.Getenv("SPOOLFS_LOAD_SECONDS")
	if seconds == "" {
		seconds = "15"
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	goroutinesBefore := runtime.NumGoroutine()
	fills := &fillCounter{}
	m := newMount(t, mountOpts{threshold: 256 << 10, ram: 64 << 20, size: 256 << 20, deadline: 5 * time.Minute, observer: fills})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var totalOps int
	for i := range 32 {
		dir := m.path("w" + strconv.Itoa(i))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command(self)
			cmd.Env = append(os.Environ(), loadWorkerEnv+"="+dir, "SPOOLFS_LOAD_SECONDS="+seconds)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Errorf("worker %d: %v\n%s", i, err, out)
				return
			}
			var ops int
			fmt.Sscanf(string(out), "ok %d", &ops)
			mu.Lock()
			totalOps += ops
			mu.Unlock()
		}()
	}
	wg.Wait()
	t.Logf("%d operations by 32 processes; %d bytes stored in the page cache after read misses", totalOps, fills.filled.Load())
	if fills.filled.Load() == 0 {
		t.Error("no read miss was answered with a fill: the random reads tested nothing of it")
	}
	if err := os.RemoveAll(m.path()); err != nil {
		entries, _ := os.ReadDir(m.Dir)
		if len(entries) > 0 {
			t.Fatal(err)
		}
	}
	waitUsage(t, m, baseline)
	st := m.FS.Pool().Stats()
	if st.RAMBytes != 0 || st.DiskBytes != 0 || st.Files != 0 {
		t.Errorf("pool after deleting everything: %+v", st)
	}
	eventually(t, "goroutines back to the baseline", func() bool {
		return runtime.NumGoroutine() <= goroutinesBefore+40 // go-fuse's readers, the pid watcher
	})
}

// TestDebugLogHasNoContents: even --debug, which traces every FUSE request,
// never writes file contents or xattr values to the log.
func TestDebugLogHasNoContents(t *testing.T) {
	requireFUSE(t)
	dir, spillDir := t.TempDir(), t.TempDir()
	var stderr bytes.Buffer
	d := startDaemon(t, dir, &stderr, "mount", "--debug", "--spill-dir", spillDir, dir)
	const secret = "hunter2-correct-horse-battery-staple"
	writeFile(t, filepath.Join(dir, "f"), []byte(secret))
	readBack(t, filepath.Join(dir, "f"))
	if err := unix.Setxattr(filepath.Join(dir, "f"), "user.note", []byte(secret), 0); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	unix.Getxattr(filepath.Join(dir, "f"), "user.note", buf)
	if err := unix.Unmount(dir, 0); err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("daemon did not exit")
	}
	if stderr.Len() == 0 {
		t.Fatal("--debug logged nothing")
	}
	for _, leak := range []string{secret, secret[:8]} {
		if strings.Contains(stderr.String(), leak) {
			t.Errorf("the log contains file contents (%q)", leak)
		}
	}
	checkNothingLeft(t, dir, spillDir)
}

// TestXattrLimits: names and values at and past the Linux limits give the
// same answers as tmpfs.
func TestXattrLimits(t *testing.T) {
	m := newMount(t, inRAM)
	ref := t.TempDir()
	if err := unix.Mount("tmpfs", ref, "tmpfs", 0, "size=16m"); err != nil {
		t.Fatalf("mounting a reference tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(ref, unix.MNT_DETACH) })
	cases := []struct {
		name  string
		value int
	}{
		{"user." + strings.Repeat("n", 250), 10}, // 255 bytes
		{"user." + strings.Repeat("n", 251), 10}, // 256 bytes: ERANGE
		{"user.v", 65536},                        // XATTR_SIZE_MAX
		{"user.v", 65537},                        // E2BIG
		{"user.", 1},                             // empty name after the prefix
		{"nosuch.ns", 1},                         // unknown namespace
	}
	for _, c := range cases {
		value := bytes.Repeat([]byte("v"), c.value)
		var errs [2]error
		for i, dir := range []string{m.Dir, ref} {
			p := filepath.Join(dir, "f")
			writeFile(t, p, nil)
			errs[i] = unix.Setxattr(p, c.name, value, 0)
			if errs[i] == nil {
				got := make([]byte, c.value)
				if n, err := unix.Getxattr(p, c.name, got); err != nil || n != c.value {
					t.Errorf("%s: getxattr after setxattr: %d, %v", dir, n, err)
				}
			}
		}
		if !errors.Is(errs[0], errs[1]) && !(errs[0] == nil && errs[1] == nil) {
			t.Errorf("setxattr %.20s... (%d-byte name, %d-byte value): spoolfs %v, tmpfs %v", c.name, len(c.name), c.value, errs[0], errs[1])
		}
	}
}

// TestManyEntries lists a directory of many entries through getdents in
// small chunks: every entry exactly once. SPOOLFS_LONG=1 uses 1,000,000.
func TestManyEntries(t *testing.T) {
	n := 20000
	if os.Getenv("SPOOLFS_LONG") == "1" {
		n = 1000000
	}
	m := newMount(t, mountOpts{threshold: 1 << 20, ram: 64 << 20, deadline: 30 * time.Minute})
	dir := m.path("big")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		fd, err := unix.Open(filepath.Join(dir, strconv.Itoa(i)), unix.O_CREAT|unix.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		unix.Close(fd)
	}
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seen := make(map[string]bool, n)
	for {
		names, err := f.Readdirnames(100)
		for _, name := range names {
			if seen[name] {
				t.Fatalf("%s listed twice", name)
			}
			seen[name] = true
		}
		if err == io.EOF || len(names) == 0 {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(seen) != n {
		t.Errorf("listed %d entries, want %d", len(seen), n)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
}

// TestSpillDirPrivate: the private spill directory is 0700 and belongs to
// the daemon's user, and holds no names while files are spilled.
func TestSpillDirPrivate(t *testing.T) {
	m := mountBinary(t, "--spill-threshold", "0")
	writeFile(t, filepath.Join(m.Dir, "f"), []byte("spilled"))
	entries, err := os.ReadDir(m.SpillDir)
	if err != nil || len(entries) != 1 {
		t.Fatalf("spill dir holds %v, %v; want one private directory", entries, err)
	}
	var st unix.Stat_t
	priv := filepath.Join(m.SpillDir, entries[0].Name())
	if err := unix.Stat(priv, &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode&0o777 != 0o700 || st.Uid != uint32(os.Geteuid()) {
		t.Errorf("private dir mode %o owner %d, want 0700 owned by %d", st.Mode&0o777, st.Uid, os.Geteuid())
	}
	if inner, _ := os.ReadDir(priv); len(inner) != 0 {
		t.Errorf("the private dir shows names: %v", inner)
	}
}

// TestSpillDirSwapped: someone who renames the daemon's private directory
// and puts a symlink to a directory of theirs in its place (as another user
// could in a spill dir writable by all and not sticky) gets none of the
// data. The daemon keeps making spill files in its own directory, which it
// holds open, and on unmount leaves both the symlink and its target alone.
func TestSpillDirSwapped(t *testing.T) {
	m := mountBinary(t, "--spill-threshold", "0")
	entries, err := os.ReadDir(m.SpillDir)
	if err != nil || len(entries) != 1 {
		t.Fatalf("spill dir holds %v, %v; want one private directory", entries, err)
	}
	private := filepath.Join(m.SpillDir, entries[0].Name())
	moved := filepath.Join(m.SpillDir, "moved")
	attacker := t.TempDir()
	if err := os.Rename(private, moved); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(attacker, private); err != nil {
		t.Fatal(err)
	}

	data := randBytes(7, 1<<20)
	writeFile(t, filepath.Join(m.Dir, "f"), data)
	inMoved := 0
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", m.PID))
	for _, fd := range fds {
		target, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", m.PID, fd.Name()))
		switch {
		case strings.HasPrefix(target, attacker+"/"):
			t.Errorf("the daemon's spill file is in the attacker's directory: %s", target)
		case strings.HasPrefix(target, moved+"/"):
			inMoved++
		}
	}
	// The four shared spill files, and the 1 MiB file's own.
	if inMoved != 5 {
		t.Errorf("%d spill files in the daemon's own directory, want 5", inMoved)
	}
	checkContent(t, filepath.Join(m.Dir, "f"), data)

	if code, _, stderr := runSpoolfs(t, "umount", m.Dir); code != 0 {
		t.Fatalf("umount: exit %d: %s", code, stderr)
	}
	m.waitGone(t)
	if st, err := os.Lstat(private); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the symlink in place of the private directory after unmount: %v", err)
	}
	if names, err := os.ReadDir(attacker); err != nil || len(names) != 0 {
		t.Errorf("the attacker's directory after unmount: %v, %v", names, err)
	}
	if err := os.Remove(private); err != nil {
		t.Fatal(err)
	}
	// The daemon cannot tell where its directory went: it is left, empty.
	assertNoFiles(t, m.SpillDir)
	if err := os.Remove(moved); err != nil {
		t.Error(err)
	}
}

var _ = bufio.NewReader
