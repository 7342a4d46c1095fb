//go:build linux

package fs

// Sessions ending while requests run inside them: writes, creations,
// renames, listings, rmdir, policy changes, lookups and shared mappings.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"golang.org/x/sys/unix"

	"github.com/spoolfs/spoolfs/fs/control"
	"github.com/spoolfs/spoolfs/fs/fusetest"
)

// sessRaceIterations is how many sessions each race test ends.
const sessRaceIterations = 100

// finish waits for done with a deadline, aborting the mount if stuck.
func (m *sessMount) finish(done <-chan struct{}, what string) {
	m.t.Helper()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		m.mnt.Abort()
		m.t.Fatalf("%s did not stop: deadlock? (connection aborted)", what)
	}
}

// TestSessionRaceWrite: sessions end while files in them are written
// through open descriptors and created by name.
func TestSessionRaceWrite(t *testing.T) {
	m := mountSessions(t, sessOpts{policy: control.SessionPolicy{TTL: time.Hour}})
	for i := range sessRaceIterations {
		name := fmt.Sprintf("w%d", i)
		s := m.mkSession(name)
		sess := m.mustSession(name)
		f, err := os.OpenFile(filepath.Join(s, "open"), os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		stop := make(chan struct{})
		started := make(chan struct{}, 2)
		done1, done2 := make(chan struct{}), make(chan struct{})
		var openErr, nameErr atomic.Value
		go func() {
			defer close(done1)
			signalled := false
			defer func() {
				if !signalled {
					started <- struct{}{}
				}
			}()
			buf := bytes.Repeat([]byte{byte(i)}, 4096)
			for j := 0; ; j++ {
				if _, err := f.WriteAt(buf, int64(j%64)*4096); err != nil {
					openErr.Store(err)
					return
				}
				if j == 0 {
					started <- struct{}{}
					signalled = true
				}
				select {
				case <-stop:
					return
				default:
				}
			}
		}()
		go func() {
			defer close(done2)
			signalled := false
			defer func() {
				if !signalled {
					started <- struct{}{}
				}
			}()
			for j := 0; ; j++ {
				p := filepath.Join(s, fmt.Sprintf("n%d", j%8))
				err := os.WriteFile(p, []byte("x"), 0o644)
				if err != nil {
					if !errors.Is(err, os.ErrNotExist) {
						nameErr.Store(err)
					}
					return
				}
				if j == 0 {
					started <- struct{}{}
					signalled = true
				}
			}
		}()
		<-started
		<-started
		if err := openErr.Load(); err != nil {
			t.Fatalf("write to an open file: %v", err)
		}
		if err := nameErr.Load(); err != nil {
			t.Fatalf("create in a session: %v", err)
		}
		m.advance(time.Hour + time.Second)
		if m.alive(name) {
			t.Fatalf("session %s still there after its ttl", name)
		}
		m.finish(done2, "the writer by name")
		close(stop)
		m.finish(done1, "the writer to an open file")
		if err := openErr.Load(); err != nil {
			t.Fatalf("write to an open file while its session ended: %v", err)
		}
		if err := nameErr.Load(); err != nil {
			t.Fatalf("create in an ending session: %v, want success or ENOENT", err)
		}
		f.Close()
		m.wantEmptyEnded(sess)
	}
	m.waitBaseline()
}

// TestSessionRaceCreate: sessions end while entries of every kind are being
// made in them. Whatever was made must go with the session.
func TestSessionRaceCreate(t *testing.T) {
	m := mountSessions(t, sessOpts{})
	makers := map[string]func(p string) error{
		"file":    func(p string) error { return os.WriteFile(p, []byte("x"), 0o644) },
		"dir":     func(p string) error { return os.Mkdir(p, 0o755) },
		"symlink": func(p string) error { return os.Symlink("target", p) },
		"fifo":    func(p string) error { return unix.Mkfifo(p, 0o644) },
	}
	kinds := []string{"file", "dir", "symlink", "fifo"}
	for i := range 2 * sessRaceIterations {
		name := fmt.Sprintf("c%d", i)
		s := m.mkSession(name)
		sess := m.mustSession(name)
		var wg sync.WaitGroup
		var started sync.WaitGroup
		var bad atomic.Value
		// The kernel makes one entry at a time per directory: a maker
		// per subdirectory keeps several creations in flight at once.
		var subdirs []*gofs.Inode
		for k, dir := range []string{"", "d1", "d2", "d3", "d4", "d5", "d6", "d7"} {
			if dir != "" {
				if err := os.Mkdir(filepath.Join(s, dir), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if dir != "" {
				subdirs = append(subdirs, sess.dir.GetChild(dir))
			}
			kind := kinds[k%len(kinds)]
			mk := makers[kind]
			wg.Add(1)
			started.Add(1)
			go func() {
				defer wg.Done()
				signalled := false
				defer func() {
					if !signalled {
						started.Done()
					}
				}()
				for j := 0; ; j++ {
					if err := mk(filepath.Join(s, dir, fmt.Sprintf("%s%d", kind, j))); err != nil {
						if !errors.Is(err, os.ErrNotExist) {
							bad.Store(fmt.Errorf("%s: %w", kind, err))
						}
						return
					}
					if j == 0 {
						started.Done()
						signalled = true
					}
				}
			}()
		}
		started.Wait()
		m.setx(s, control.AttrEnd, "1")
		m.expire()
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		m.finish(done, "the makers")
		if err := bad.Load(); err != nil {
			t.Fatalf("making entries in an ending session: %v, want success or ENOENT", err)
		}
		m.wantGone(name)
		m.wantEmptyEnded(sess, subdirs...)
	}
	m.waitBaseline()
}

// TestSessionRaceRename: sessions end while entries inside are renamed.
func TestSessionRaceRename(t *testing.T) {
	m := mountSessions(t, sessOpts{})
	for i := range sessRaceIterations {
		name := fmt.Sprintf("r%d", i)
		s := m.mkSession(name)
		sess := m.mustSession(name)
		for _, d := range []string{"d1", "d2"} {
			if err := os.Mkdir(filepath.Join(s, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		sessWriteN(t, filepath.Join(s, "a"), 8192)
		sessWriteN(t, filepath.Join(s, "d1/x"), 4096)
		started := make(chan struct{})
		done := make(chan struct{})
		var bad atomic.Value
		go func() {
			defer close(done)
			signalled := false
			defer func() {
				if !signalled {
					close(started)
				}
			}()
			moves := [][2]string{{"a", "b"}, {"b", "d1/b"}, {"d1/b", "d2/c"}, {"d2/c", "a"}, {"d1", "d2/d1"}, {"d2/d1", "d1"}}
			for j := 0; ; j++ {
				mv := moves[j%len(moves)]
				err := os.Rename(filepath.Join(s, mv[0]), filepath.Join(s, mv[1]))
				if err != nil {
					if !errors.Is(err, os.ErrNotExist) {
						bad.Store(err)
					}
					return
				}
				if j == 0 {
					close(started)
					signalled = true
				}
			}
		}()
		<-started
		if err := bad.Load(); err != nil {
			t.Fatalf("rename in a session: %v", err)
		}
		m.setx(s, control.AttrEnd, "1")
		m.expire()
		m.finish(done, "the renamer")
		if err := bad.Load(); err != nil {
			t.Fatalf("rename in an ending session: %v, want success or ENOENT", err)
		}
		m.wantGone(name)
		m.wantEmptyEnded(sess)
	}
	m.waitBaseline()
}

// TestSessionRaceListRoot: sessions come and go while the root is listed.
func TestSessionRaceListRoot(t *testing.T) {
	m := mountSessions(t, sessOpts{})
	stop := make(chan struct{})
	var stopOnce sync.Once
	done := make(chan struct{}, 2)
	t.Cleanup(func() { // before the unmount, even after a failure
		stopOnce.Do(func() { close(stop) })
		for range 2 {
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				m.mnt.Abort()
				return
			}
		}
	})
	var bad atomic.Value
	var lists atomic.Int64
	for range 2 {
		go func() {
			defer func() { done <- struct{}{} }()
			for {
				select {
				case <-stop:
					return
				default:
				}
				entries, err := os.ReadDir(m.dir)
				if err != nil {
					bad.Store(err)
					return
				}
				for _, e := range entries {
					if _, err := e.Info(); err != nil && !errors.Is(err, os.ErrNotExist) {
						bad.Store(err)
						return
					}
				}
				lists.Add(1)
			}
		}()
	}
	for i := range sessRaceIterations {
		var names []string
		for j := range 3 {
			name := fmt.Sprintf("l%d-%d", i, j)
			s := m.mkSession(name)
			sessWriteN(t, filepath.Join(s, "f"), 4096)
			names = append(names, name)
		}
		for _, name := range names {
			m.setx(m.path(name), control.AttrEnd, "1")
		}
		m.expire()
		for _, name := range names {
			m.wantGone(name)
		}
	}
	stopOnce.Do(func() { close(stop) })
	if err := bad.Load(); err != nil {
		t.Fatalf("listing the root: %v", err)
	}
	if lists.Load() == 0 {
		t.Fatal("the root was never listed")
	}
	if names := m.readRoot(); len(names) != 0 {
		t.Errorf("root still lists %v", names)
	}
	m.waitBaseline()
}

// TestSessionRaceRmdirAndExpiry: rmdir of an empty session and its end by
// the expiry loop race; it ends once, with one log line.
func TestSessionRaceRmdirAndExpiry(t *testing.T) {
	m := mountSessions(t, sessOpts{})
	for i := range sessRaceIterations {
		name := fmt.Sprintf("e%d", i)
		s := m.mkSession(name)
		m.setx(s, control.AttrEnd, "1")
		done := make(chan error, 1)
		go func() { done <- unix.Rmdir(s) }()
		m.expire()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, unix.ENOENT) {
				t.Fatalf("rmdir racing the end: %v, want success or ENOENT", err)
			}
		case <-time.After(20 * time.Second):
			m.mnt.Abort()
			t.Fatal("rmdir hung")
		}
		m.wantGone(name)
	}
	if n := m.f.sessions.count(); n != 0 {
		t.Errorf("%d sessions left", n)
	}
	m.waitBaseline()
	if n := strings.Count(m.logs.String(), `"msg":"session ended"`); n != sessRaceIterations {
		t.Errorf("%d \"session ended\" lines for %d sessions", n, sessRaceIterations)
	}
}

// TestSessionRacePolicy: policy changes, touches and reads race the expiry
// loop; afterwards the session still obeys the last policy set.
func TestSessionRacePolicy(t *testing.T) {
	m := mountSessions(t, sessOpts{policy: control.SessionPolicy{TTL: time.Hour, Idle: time.Hour}})
	s := m.mkSession("p")
	sessWriteN(t, filepath.Join(s, "f"), 4096)
	// The kernel sends RELEASE after close(2) has returned; until it is
	// served the file is open, and the end would log its bytes as still
	// open rather than freed.
	m.waitOpens(m.mustSession("p"), 0)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var bad atomic.Value
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; ; j++ {
				select {
				case <-stop:
					return
				default:
				}
				var err error
				switch (g + j) % 5 {
				case 0:
					err = unix.Setxattr(s, control.AttrTTL, []byte(fmt.Sprintf("%dm", 30+j%30)), 0)
				case 1:
					err = unix.Setxattr(s, control.AttrIdle, []byte(fmt.Sprintf("%dm", 30+j%30)), 0)
				case 2:
					err = unix.Setxattr(s, control.AttrTouch, []byte("1"), 0)
				case 3:
					_, err = sessGetx(s, control.AttrExpires)
				case 4:
					_, err = sessGetx(s, control.AttrUsage)
				}
				if err != nil {
					bad.Store(err)
					return
				}
			}
		}()
	}
	for range 200 {
		m.advance(time.Second) // never past 30 minutes in all
	}
	close(stop)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	m.finish(done, "the policy writers")
	if err := bad.Load(); err != nil {
		t.Fatalf("control attribute while the expiry loop ran: %v", err)
	}
	m.wantAlive("p")
	m.setx(s, control.AttrIdle, "0")
	m.setx(s, control.AttrTTL, "1s")
	if got := m.sessGetx(s, control.AttrReason); got != control.ReasonTTL {
		t.Errorf("reason %q, want ttl", got)
	}
	m.expire() // created more than 1s ago: due now
	m.wantGone("p")
	m.wantEndLog("p", control.ReasonTTL, 4096)
	m.waitBaseline()
}

// TestSessionRaceLookup: a session ends while the kernel looks its name up
// (as it does for ls -l, or any path through it after its entry expired).
// Once ended, it must not come back.
func TestSessionRaceLookup(t *testing.T) {
	m := mountSessions(t, sessOpts{})
	for i := range 5 * sessRaceIterations {
		name := fmt.Sprintf("k%d", i)
		s := m.mkSession(name)
		stop := make(chan struct{})
		started := make(chan struct{})
		done := make(chan struct{})
		var bad atomic.Value
		go func() {
			defer close(done)
			for j := 0; ; j++ {
				// Make the kernel forget the name, so that lstat asks us.
				m.f.root.NotifyEntry(name)
				_, err := os.Lstat(s)
				if err != nil && !errors.Is(err, os.ErrNotExist) {
					bad.Store(err)
				}
				if j == 0 {
					close(started)
				}
				select {
				case <-stop:
					return
				default:
				}
			}
		}()
		<-started
		m.setx(s, control.AttrEnd, "1")
		m.expire()
		close(stop)
		m.finish(done, "the lookups")
		if err := bad.Load(); err != nil {
			t.Fatalf("lstat of an ending session: %v", err)
		}
		m.f.root.NotifyEntry(name)
		if _, err := os.Lstat(s); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("ended session %s: lstat gives %v", name, err)
		}
		// A lookup that raced the end may have put the entry back into
		// go-fuse's tree after end took it out; it is invisible, and the
		// first lookup of the name (the lstat above) takes it out again.
		if m.f.root.GetChild(name) != nil {
			t.Fatalf("ended session %s is back in the root (iteration %d)", name, i)
		}
	}
	if n := m.f.sessions.count(); n != 0 {
		t.Errorf("%d sessions left", n)
	}
	m.waitBaseline()
}

// TestSessionRaceMmap: a session ends while a file in it is mapped shared
// and being written through the mapping. The mapping lives in a child
// process: a page fault on a FUSE file served by this very process would
// stall the Go runtime (stop-the-world waits for the faulting thread,
// which waits for the stopped server).
func TestSessionRaceMmap(t *testing.T) {
	const size = 256 << 10
	m := mountSessions(t, sessOpts{})
	for i := range 6 {
		name := fmt.Sprintf("m%d", i)
		s := m.mkSession(name)
		file := filepath.Join(s, "mapped")
		f, err := os.Create(file)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(size); err != nil {
			t.Fatal(err)
		}
		f.Close()

		child := exec.Command(os.Args[0], "-test.run=^TestSessionMmapHelper$")
		child.Env = append(os.Environ(), "SPOOLFS_MMAP_HELPER="+file)
		stdin, err := child.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		stdout, err := child.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr fusetest.LogBuffer
		child.Stderr = &stderr
		if err := child.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 4)
		go func() {
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		exited := make(chan error, 1)
		kill := func(why string) {
			child.Process.Kill()
			m.mnt.Abort()
			t.Fatalf("mmap child: %s\nstderr: %s", why, stderr.String())
		}
		select {
		case l := <-lines:
			if l != "started" {
				kill(fmt.Sprintf("said %q, want started", l))
			}
		case <-time.After(20 * time.Second):
			kill("did not start writing")
		}
		m.setx(s, control.AttrEnd, "1")
		m.expire()
		m.wantGone(name)
		stdin.Write([]byte("ended\n"))
		stdin.Close()
		var said []string
		go func() {
			for l := range lines {
				said = append(said, l)
			}
			exited <- child.Wait()
		}()
		select {
		case err := <-exited:
			if err != nil || !slices.Contains(said, "ok") {
				t.Fatalf("mmap child: %v, said %q\nstderr: %s", err, said, stderr.String())
			}
		case <-time.After(20 * time.Second):
			kill("did not finish: deadlock?")
		}
	}
	m.waitBaseline()
}

// TestSessionMmapHelper is the child process of TestSessionRaceMmap: it
// maps the file shared and writes through the mapping, syncing now and
// then, until told on stdin that the session has ended; then it rewrites
// every byte, syncs, and checks what the file reads back.
func TestSessionMmapHelper(t *testing.T) {
	path := os.Getenv("SPOOLFS_MMAP_HELPER")
	if path == "" {
		t.Skip("the child process of TestSessionRaceMmap")
	}
	if err := sessMmapHelper(path); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("ok")
	os.Exit(0)
}

func sessMmapHelper(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	size := int(st.Size())
	mem, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return err
	}
	ended := make(chan struct{})
	go func() {
		bufio.NewReader(os.Stdin).ReadString('\n')
		close(ended)
	}()
	for j := 0; ; j++ {
		mem[(j*4099)%size] = byte(j)
		if j%512 == 0 {
			if err := unix.Msync(mem, unix.MS_SYNC); err != nil {
				return fmt.Errorf("msync while writing: %w", err)
			}
		}
		if j == 0 {
			fmt.Println("started")
		}
		select {
		case <-ended:
		default:
			continue
		}
		break
	}
	for j := range mem {
		mem[j] = byte(j * 7)
	}
	if err := unix.Msync(mem, unix.MS_SYNC); err != nil {
		return fmt.Errorf("msync after the end: %w", err)
	}
	if err := unix.Munmap(mem); err != nil {
		return err
	}
	got := make([]byte, size)
	if _, err := f.ReadAt(got, 0); err != nil {
		return fmt.Errorf("read back after the end: %w", err)
	}
	for j := range got {
		if got[j] != byte(j*7) {
			return fmt.Errorf("byte %d reads back %d, want %d", j, got[j], byte(j*7))
		}
	}
	return nil
}
