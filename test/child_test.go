package test

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// helperChild is this test binary run again as a helper process, for what
// the test process itself must not do (map a file of a mount it serves,
// act as another user): TestMain's caller sees env set and runs the helper,
// which reads one command a line on stdin and answers one line, its status
// ("ok" or "err") and the rest.
type helperChild struct {
	t    testing.TB
	name string // for messages
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Reader
}

// startHelperChild starts the helper that env selects, in dir ("": this
// one). Stop it in a cleanup registered after the mount's, so that it goes
// before the unmount.
func startHelperChild(t testing.TB, name, env, dir string) *helperChild {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env+"=1")
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return &helperChild{t: t, name: name, cmd: cmd, in: in, out: bufio.NewReader(out)}
}

// ask sends one command and returns the answer's status and the rest.
func (c *helperChild) ask(format string, args ...any) (status, reply string) {
	c.t.Helper()
	if _, err := fmt.Fprintf(c.in, format+"\n", args...); err != nil {
		c.t.Fatalf("%s: %v", c.name, err)
	}
	line, err := c.out.ReadString('\n')
	if err != nil {
		c.t.Fatalf("%s: %s: %v", c.name, fmt.Sprintf(format, args...), err)
	}
	status, reply, _ = strings.Cut(strings.TrimSpace(line), " ")
	return status, reply
}

// stop ends the helper (end of its input) and waits for it.
func (c *helperChild) stop() error {
	c.in.Close()
	return c.cmd.Wait()
}
