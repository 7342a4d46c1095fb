package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/spoolfs/spoolfs/fs/control"
)

// TestUsageListsFlags: the top-level usage shows umount's -l, and
// 'session --help' every flag of 'session new', from its option table.
func TestUsageListsFlags(t *testing.T) {
	var top bytes.Buffer
	run([]string{"help"}, &top, &bytes.Buffer{})
	var lazy bool
	newUmountFlags(&lazy).VisitAll(func(f *pflag.Flag) {
		if !strings.Contains(top.String(), "umount [-"+f.Shorthand+"]") {
			t.Errorf("usage lacks umount's -%s:\n%s", f.Shorthand, top.String())
		}
	})
	var help bytes.Buffer
	if code := run([]string{"session", "--help"}, &help, &bytes.Buffer{}); code != exitOK {
		t.Fatalf("session --help: exit %d", code)
	}
	var o sessionNewOptions
	newSessionNewFlags(&o).VisitAll(func(f *pflag.Flag) {
		if !strings.Contains(help.String(), "--"+f.Name) {
			t.Errorf("session --help lacks --%s:\n%s", f.Name, help.String())
		}
	})
}

// TestPrintSessionsEmpty: no sessions, no table, not even its header.
func TestPrintSessionsEmpty(t *testing.T) {
	var out bytes.Buffer
	printSessions(&out, nil, time.Now())
	if out.Len() != 0 {
		t.Errorf("no sessions printed %q", out.String())
	}
}

// TestPrintSessionsOwner: a session that ends when its owner exits says
// so, with the PID, rather than "never" and "none".
func TestPrintSessionsOwner(t *testing.T) {
	now := time.Date(2024, 1, 2, 3, 0, 0, 0, time.UTC)
	owned := &control.SessionInfo{Name: "owned", Expires: control.Never, Reason: control.None, PID: 1234}
	both := &control.SessionInfo{Name: "both", Expires: control.FormatTime(now.Add(2 * time.Hour)), Reason: control.ReasonTTL, PID: 99}
	free := &control.SessionInfo{Name: "free", Expires: control.Never, Reason: control.None}
	var out bytes.Buffer
	printSessions(&out, []*control.SessionInfo{owned, both, free}, now)
	rows := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(rows) != 4 {
		t.Fatalf("want a header and 3 rows:\n%s", out.String())
	}
	for i, want := range []struct{ has, hasNot string }{
		{"when PID 1234 exits", "never"},
		{"2h or when PID 99 exits", "none"},
		{"never", "PID"},
	} {
		row := rows[i+1]
		// The words are ours, not the daemon's: not quoted as names are.
		if !strings.Contains(row, want.has) || strings.Contains(row, want.hasNot) || strings.Contains(row, "'") {
			t.Errorf("row %q: want %q in it and not %q", row, want.has, want.hasNot)
		}
	}
}
