//go:build linux

package fs

// When a session ends: at its ttl, after idle time, on request (the end
// attribute, rmdir), and what its end logs.

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/spoolfs/spoolfs/fs/control"
)

func TestSessionEndsAtTTL(t *testing.T) {
	m := mountSessions(t, sessOpts{policy: control.SessionPolicy{TTL: time.Hour}})
	t0 := m.clock.Now()
	s := m.mkSession("job")
	sessWriteN(t, filepath.Join(s, "data"), 25*4096)
	if err := os.MkdirAll(filepath.Join(s, "a/b"), 0o755); err != nil {
		t.Fatal(err)
	}
	sessWriteN(t, filepath.Join(s, "a/b/more"), 3*4096)
	if got := m.sessGetx(s, control.AttrReason); got != control.ReasonTTL {
		t.Errorf("reason %q, want ttl", got)
	}
	if got, want := m.sessGetx(s, control.AttrExpires), sessRFC(t0.Add(time.Hour)); got != want {
		t.Errorf("expires %q, want %q", got, want)
	}
	if got, want := m.sessGetx(s, control.AttrCreated), sessRFC(t0); got != want {
		t.Errorf("created %q, want %q", got, want)
	}
	// Activity does not move a TTL.
	m.clock.Advance(30 * time.Minute)
	sessWriteN(t, filepath.Join(s, "late"), 4096)
	m.waitOpens(m.mustSession("job"), 0)

	m.advance(30*time.Minute - time.Second)
	m.wantAlive("job")
	m.advance(2 * time.Second)
	m.wantGone("job")
	m.wantEndLog("job", control.ReasonTTL, 29*4096)
	m.waitBaseline()
	var st control.Status
	if err := json.Unmarshal([]byte(m.sessGetx(m.dir, control.AttrStatus)), &st); err != nil {
		t.Fatal(err)
	}
	if st.Sessions != 0 || st.Used != 0 || st.Files != 0 {
		t.Errorf("status after the end: %+v", st)
	}
}

// TestSessionIdle: each kind of activity pushes the idle deadline to the
// time of the activity; reading the control attributes does not.
func TestSessionIdle(t *testing.T) {
	const idle = 10 * time.Minute
	activities := map[string]struct {
		counts bool
		prep   func(m *sessMount, s string) func() // runs before the clock moves; returns the activity
	}{
		"write": {true, func(m *sessMount, s string) func() {
			f, err := os.OpenFile(filepath.Join(s, "f"), os.O_WRONLY, 0)
			if err != nil {
				m.t.Fatal(err)
			}
			return func() {
				if _, err := f.WriteAt([]byte("x"), 10); err != nil {
					m.t.Fatal(err)
				}
				f.Close()
			}
		}},
		"lookup": {true, func(m *sessMount, s string) func() {
			return func() {
				// Make the kernel forget the name, so that stat asks us.
				m.mustSession(filepath.Base(s)).dir.NotifyEntry("f")
				if _, err := os.Stat(filepath.Join(s, "f")); err != nil {
					m.t.Fatal(err)
				}
			}
		}},
		"readdir": {true, func(m *sessMount, s string) func() {
			return func() {
				if names, err := os.ReadDir(s); err != nil || len(names) != 1 {
					m.t.Fatalf("readdir: %v %v", names, err)
				}
			}
		}},
		"touch attribute": {true, func(m *sessMount, s string) func() {
			return func() { m.setx(s, control.AttrTouch, "1") }
		}},
		"control attributes": {false, func(m *sessMount, s string) func() {
			return func() {
				for _, name := range []string{control.AttrTTL, control.AttrIdle, control.AttrSize, control.AttrInodes, control.AttrPID, control.AttrUsage, control.AttrExpires, control.AttrCreated, control.AttrReason} {
					m.sessGetx(s, name)
				}
				if _, err := unix.Listxattr(s, make([]byte, 4096)); err != nil {
					m.t.Fatal(err)
				}
				var st unix.Stat_t
				if err := unix.Stat(s, &st); err != nil {
					m.t.Fatal(err)
				}
			}
		}},
	}
	for name, act := range activities {
		t.Run(name, func(t *testing.T) {
			m := mountSessions(t, sessOpts{policy: control.SessionPolicy{Idle: idle}})
			s := m.mkSession("idle")
			sessWriteN(t, filepath.Join(s, "f"), 100)
			// RELEASE comes after close(2) returns and counts as use:
			// let it land before the clock moves.
			m.waitOpens(m.mustSession("idle"), 0)
			t0 := m.clock.Now()
			do := act.prep(m, s)
			sess := m.mustSession("idle")
			if got, want := m.sessGetx(s, control.AttrExpires), sessRFC(t0.Add(idle)); got != want {
				t.Fatalf("expires %q, want %q", got, want)
			}
			if got := m.sessGetx(s, control.AttrReason); got != control.ReasonIdle {
				t.Fatalf("reason %q, want idle", got)
			}

			m.advance(6 * time.Minute)
			t1 := m.clock.Now()
			do()
			m.waitOpens(sess, 0)
			want := t0.Add(idle)
			if act.counts {
				want = t1.Add(idle)
			}
			if got := m.sessGetx(s, control.AttrExpires); got != sessRFC(want) {
				t.Fatalf("after the %s, expires %q, want %q", name, got, sessRFC(want))
			}

			m.clock.Advance(t0.Add(idle + time.Second).Sub(m.clock.Now()))
			m.expire()
			if !act.counts {
				m.wantGone("idle")
				m.wantEndLog("idle", control.ReasonIdle, 4096)
				m.waitBaseline()
				return
			}
			m.wantAlive("idle")
			m.clock.Advance(t1.Add(idle - time.Second).Sub(m.clock.Now()))
			m.expire()
			m.wantAlive("idle")
			m.advance(2 * time.Second)
			m.wantGone("idle")
			m.wantEndLog("idle", control.ReasonIdle, 4096)
			m.waitBaseline()
		})
	}
}

// TestSessionIdleWithOpenFile: a session with a file open is in use, however
// long nothing happens.
func TestSessionIdleWithOpenFile(t *testing.T) {
	m := mountSessions(t, sessOpts{policy: control.SessionPolicy{Idle: 10 * time.Minute}})
	s := m.mkSession("busy")
	f, err := os.Create(filepath.Join(s, "open"))
	if err != nil {
		t.Fatal(err)
	}
	sess := m.mustSession("busy")
	for range 6 {
		m.advance(time.Hour)
		m.wantAlive("busy")
	}
	f.Close()
	m.waitOpens(sess, 0)
	m.advance(10*time.Minute - time.Second)
	m.wantAlive("busy")
	m.advance(2 * time.Second)
	m.wantGone("busy")
	m.wantEndLog("busy", control.ReasonIdle, 0)
	m.waitBaseline()
}

// TestSessionEndAttribute: user.spoolfs.end ends the session at the next
// expiry run.
func TestSessionEndAttribute(t *testing.T) {
	m := mountSessions(t, sessOpts{})
	s := m.mkSession("rm-me")
	sessWriteN(t, filepath.Join(s, "f"), 8192)
	if got := m.sessGetx(s, control.AttrReason); got != "none" {
		t.Errorf("reason %q, want none", got)
	}
	if got := m.sessGetx(s, control.AttrExpires); got != "never" {
		t.Errorf("expires %q, want never", got)
	}
	m.setx(s, control.AttrEnd, "1")
	m.wantAlive("rm-me") // until the expiry loop runs
	if got := m.sessGetx(s, control.AttrReason); got != control.ReasonRemoved {
		t.Errorf("reason after end: %q, want %s", got, control.ReasonRemoved)
	}
	if got, want := m.sessGetx(s, control.AttrExpires), sessRFC(m.clock.Now()); got != want {
		t.Errorf("expires after end: %q, want now (%q)", got, want)
	}
	// RELEASE reaches us after close(2) returns: until it has, the file
	// is open and its bytes go at its last close, not at the end.
	m.waitOpens(m.mustSession("rm-me"), 0)
	m.expire()
	m.wantGone("rm-me")
	m.wantEndLog("rm-me", control.ReasonRemoved, 8192)
	m.waitBaseline()
}

// TestSessionRmdirEndsAndLogs: rmdir of an empty session ends it, and the
// log names it like every other end.
func TestSessionRmdirEndsAndLogs(t *testing.T) {
	m := mountSessions(t, sessOpts{})
	s := m.mkSession("empty")
	if err := os.Remove(s); err != nil {
		t.Fatal(err)
	}
	m.wantGone("empty")
	if n := m.f.sessions.count(); n != 0 {
		t.Errorf("%d sessions left", n)
	}
	m.waitBaseline()
	m.wantEndLog("empty", control.ReasonRemoved, 0)
}
