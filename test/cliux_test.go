package test

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
)

// TestCLIStatusAndSessionsSayWhatUsersExpect drives status and session ls
// on a real mount: no table header without sessions; session_defaults in
// the one JSON schema (snake_case, Go duration strings); a session that
// ends when its owner exits says so, with the PID.
func TestCLIStatusAndSessionsSayWhatUsersExpect(t *testing.T) {
	m := mountBinary(t, "--session-idle", "90m")

	code, stdout, stderr := runSpoolfs(t, "status", m.Dir)
	if code != 0 {
		t.Fatalf("status: exit %d: %s", code, stderr)
	}
	if strings.Contains(stdout, "NAME") || !strings.Contains(stdout, "sessions    0") || strings.HasSuffix(stdout, "\n\n") {
		t.Errorf("status of a mount without sessions:\n%s", stdout)
	}
	if code, stdout, stderr = runSpoolfs(t, "session", "ls", m.Dir); code != 0 || stdout != "" {
		t.Errorf("session ls without sessions: exit %d, %q, %s", code, stdout, stderr)
	}

	code, stdout, stderr = runSpoolfs(t, "status", "--json", m.Dir)
	if code != 0 {
		t.Fatalf("status --json: exit %d: %s", code, stderr)
	}
	var report struct {
		Mount struct {
			SessionDefaults map[string]any `json:"session_defaults"`
		} `json:"mount"`
	}
	if err := json.Unmarshal([]byte(stdout), &report); err != nil {
		t.Fatalf("status --json: %v\n%s", err, stdout)
	}
	want := map[string]any{"ttl": "0s", "idle": "1h30m0s", "size_limit": float64(0), "inodes_limit": float64(0)}
	if fmt.Sprint(report.Mount.SessionDefaults) != fmt.Sprint(want) {
		t.Errorf("session_defaults = %v, want %v", report.Mount.SessionDefaults, want)
	}

	owner := exec.Command("sleep", "600")
	if err := owner.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { owner.Process.Kill(); owner.Wait() })
	pid := owner.Process.Pid
	code, _, stderr = runSpoolfs(t, "session", "new", m.Dir, "--pid", fmt.Sprint(pid), "--idle", "0")
	if code != 0 {
		t.Fatalf("session new --pid: exit %d: %s", code, stderr)
	}
	code, stdout, stderr = runSpoolfs(t, "session", "ls", m.Dir)
	if code != 0 {
		t.Fatalf("session ls: exit %d: %s", code, stderr)
	}
	rows := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(rows) != 2 || !strings.Contains(rows[1], fmt.Sprintf("when PID %d exits", pid)) ||
		!strings.Contains(rows[1], "owner-exited") || strings.Contains(rows[1], "never") {
		t.Errorf("session ls of a session that ends with PID %d:\n%s", pid, stdout)
	}
	code, stdout, _ = runSpoolfs(t, "status", m.Dir)
	if code != 0 || !strings.Contains(stdout, "\n\nNAME") {
		t.Errorf("status with a session: exit %d, want the figures, a blank line and the table:\n%s", code, stdout)
	}
}
