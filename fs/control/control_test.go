package control

import (
	"testing"
	"time"
)

// TestNames pins the names and fixed values of the surface: the CLI of
// another version, scripts and cp -a of a session depend on them.
func TestNames(t *testing.T) {
	for got, want := range map[string]string{
		AttrTTL: "user.spoolfs.ttl", AttrIdle: "user.spoolfs.idle", AttrSize: "user.spoolfs.size",
		AttrInodes: "user.spoolfs.inodes", AttrPID: "user.spoolfs.pid", AttrUsage: "user.spoolfs.usage",
		AttrExpires: "user.spoolfs.expires", AttrCreated: "user.spoolfs.created", AttrReason: "user.spoolfs.reason",
		AttrEnd: "user.spoolfs.end", AttrTouch: "user.spoolfs.touch", AttrStatus: "user.spoolfs.status",
		ReasonTTL: "ttl", ReasonIdle: "idle", ReasonOwner: "owner-exited", ReasonRemoved: "removed",
		None: "none", Never: "never", FormatAncestor(3): "ancestor:3",
		FormatTime(time.Date(2024, 1, 2, 3, 4, 5, 6, time.FixedZone("x", 3600))): "2024-01-02T02:04:05.000000006Z",
	} {
		if got != want {
			t.Errorf("%q, want %q", got, want)
		}
	}
	for name, want := range map[string]bool{AttrStatus: true, Prefix + "bogus": true, "user.spoolfs": false, "user.other": false, "trusted.spoolfs.ttl": false} {
		if Reserved(name) != want {
			t.Errorf("Reserved(%q) = %v", name, !want)
		}
	}
}
