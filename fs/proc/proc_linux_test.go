package proc

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestParseStat(t *testing.T) {
	// Fields numbered as in proc(5): starttime is the 22nd.
	tail := " 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23"
	for _, tc := range []struct {
		in   string
		want stat
		ok   bool
	}{
		{"42 (sh) S 7" + tail, stat{'S', 7, "22"}, true},
		// A command name may hold spaces and parentheses.
		{"42 (a) b (c) Z 1" + tail, stat{'Z', 1, "22"}, true},
		{"42 (x)) R 0" + tail, stat{'R', 0, "22"}, true},
		{"42 (sh S 7" + tail, stat{}, false},
		{"42 (sh) S 7 5", stat{}, false},
		{"42 (sh) S x" + tail, stat{}, false},
		{"", stat{}, false},
	} {
		got, err := parseStat(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseStat(%q) = %+v, %v; want %+v, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestFactsOfThisProcess(t *testing.T) {
	self := os.Getpid()
	if !Alive(self) {
		t.Error("this process is not alive")
	}
	if ppid, err := Parent(self); err != nil || ppid != os.Getppid() {
		t.Errorf("Parent(self) = %d, %v; want %d", ppid, err, os.Getppid())
	}
	if !SameNamespace(self) {
		t.Error("this process is not in its own PID namespace")
	}
	if tok, err := startToken(self); err != nil || tok == "" {
		t.Errorf("startToken(self) = %q, %v", tok, err)
	}
	if comm, err := Command(self); err != nil || comm == "" || len(comm) > 15 {
		t.Errorf("Command(self) = %q, %v", comm, err)
	}
	if args, err := Args(self); err != nil || len(args) != len(os.Args) || args[0] != os.Args[0] {
		t.Errorf("Args(self) = %q, %v; want %q", args, err, os.Args)
	}
	tid := uint32(unix.Gettid())
	if got := ThreadGroup(tid); got != uint32(self) {
		t.Errorf("ThreadGroup(%d) = %d; want this process, %d", tid, got, self)
	}
	const gone = 1<<22 + 1 // above pid_max's default ceiling
	if got := ThreadGroup(gone); got != 0 {
		t.Errorf("a thread that does not exist: %d, want 0", got)
	}
	if Alive(gone) {
		t.Error("a PID that does not exist is alive")
	}
	if _, err := Parent(gone); err == nil {
		t.Error("Parent of a PID that does not exist succeeded")
	}
}

// TestZombieIsGone: a process that has exited but not been reaped is gone
// for every question here.
func TestZombieIsGone(t *testing.T) {
	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	pid := cmd.Process.Pid
	// Wait for the exit without reaping it.
	var info unix.Siginfo
	if err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil); err != nil {
		t.Fatal(err)
	}
	if Alive(pid) {
		t.Error("a zombie is alive")
	}
	if _, err := startToken(pid); err == nil {
		t.Error("a zombie has a start token")
	}
}

func TestWatcher(t *testing.T) {
	w := NewWatcher()
	defer w.Close()
	testWatch(t, w.Watch)
}

// TestPoller is the fallback where pidfds are missing or run out.
func TestPoller(t *testing.T) {
	p := newPoller()
	p.interval = 10 * time.Millisecond
	defer p.close()
	testWatch(t, p.watch)
}

func testWatch(t *testing.T, watch func(int, func()) (func(), error)) {
	t.Helper()
	exited, stopped := startSleep(t), startSleep(t)
	fired := make(chan int, 2)
	if _, err := watch(exited.Process.Pid, func() { fired <- exited.Process.Pid }); err != nil {
		t.Fatal(err)
	}
	stop, err := watch(stopped.Process.Pid, func() { fired <- stopped.Process.Pid })
	if err != nil {
		t.Fatal(err)
	}
	stop()
	stopped.Process.Kill()
	stopped.Wait()
	exited.Process.Kill()
	select {
	case pid := <-fired:
		if pid != exited.Process.Pid {
			t.Errorf("a stopped watch fired (pid %d)", pid)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no call back 30 s after the watched process was killed")
	}
	exited.Wait()
	select {
	case pid := <-fired:
		t.Errorf("a second call back, for pid %d", pid)
	default:
	}
	if _, err := watch(exited.Process.Pid, func() {}); err != syscall.ESRCH {
		t.Errorf("watching a reaped process: %v, want ESRCH", err)
	}
}

func startSleep(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}
