package control

import (
	"encoding/json"
	"testing"
	"time"
)

// TestWireFormat pins the JSON that scripts read (user.spoolfs.status,
// user.spoolfs.usage, 'session ls --json', 'status --json'): every field,
// its name and its place, as README.md documents them. A change here is a
// change users see. session_defaults changed once, on purpose, from Go
// field names and nanoseconds to the one schema: snake_case, durations
// as Go duration strings, and the names SessionInfo gives a session's
// own policy.
func TestWireFormat(t *testing.T) {
	usage := SessionUsage{Bytes: 4, Inodes: 5, RAM: 6, Disk: 7, OpenFiles: 8}
	info := &SessionInfo{Name: "n", Path: "/p/n", Owner: 1000, Created: time.Date(2024, 1, 2, 3, 4, 5, 6, time.UTC),
		Expires: Never, Reason: None, TTL: "2h0m0s", Idle: "0s", Size: 1, Inodes: 2, PID: 3, Usage: usage}
	status := &Status{Capacity: 1, Used: 2, Inodes: 3, InodesUsed: 4, RAMBudget: 5, RAMUsed: 6, DiskUsed: 7, SpillThreshold: 8,
		Spills: 9, Files: 10, SpilledFiles: 11, Sessions: 12,
		SessionDefaults: SessionPolicy{TTL: time.Hour, Idle: time.Second, Bytes: 13, Inodes: 14},
		UserDefaults:    UserLimit{Bytes: 15, Inodes: 16}, Transport: "uring"}
	users := []UserUsage{{UID: 1000, Bytes: 1, Inodes: 2, SizeLimit: 3, InodesLimit: 4, Own: true}}
	cases := []struct {
		v    any
		want string
	}{
		{info, `{"name":"n","path":"/p/n","uid":1000,"created":"2024-01-02T03:04:05.000000006Z","expires":"never","ends_by":"none","ttl":"2h0m0s","idle":"0s","size_limit":1,"inodes_limit":2,"pid":3,"usage":{"bytes":4,"inodes":5,"ram":6,"disk":7,"open_files":8}}`},
		{usage, `{"bytes":4,"inodes":5,"ram":6,"disk":7,"open_files":8}`},
		{status, `{"capacity":1,"used":2,"inodes":3,"inodes_used":4,"ram_budget":5,"ram_used":6,"disk_used":7,"spill_threshold":8,"spills":9,"files":10,"spilled_files":11,"sessions":12,"session_defaults":{"ttl":"1h0m0s","idle":"1s","size_limit":13,"inodes_limit":14},"user_defaults":{"size_limit":15,"inodes_limit":16},"transport":"uring"}`},
		{users, `[{"uid":1000,"bytes":1,"inodes":2,"size_limit":3,"inodes_limit":4,"own_limits":true}]`},
		{UserLimits{"1000": {Bytes: 1, Inodes: 2}}, `{"1000":{"size_limit":1,"inodes_limit":2}}`},
		{StatusReport{Mount: status, Users: users, Sessions: []*SessionInfo{info}}, `{"mount":{"capacity":1,"used":2,"inodes":3,"inodes_used":4,"ram_budget":5,"ram_used":6,"disk_used":7,"spill_threshold":8,"spills":9,"files":10,"spilled_files":11,"sessions":12,"session_defaults":{"ttl":"1h0m0s","idle":"1s","size_limit":13,"inodes_limit":14},"user_defaults":{"size_limit":15,"inodes_limit":16},"transport":"uring"},"users":[{"uid":1000,"bytes":1,"inodes":2,"size_limit":3,"inodes_limit":4,"own_limits":true}],"sessions":[{"name":"n","path":"/p/n","uid":1000,"created":"2024-01-02T03:04:05.000000006Z","expires":"never","ends_by":"none","ttl":"2h0m0s","idle":"0s","size_limit":1,"inodes_limit":2,"pid":3,"usage":{"bytes":4,"inodes":5,"ram":6,"disk":7,"open_files":8}}]}`},
		{StatusReport{Sessions: []*SessionInfo{}}, `{"sessions":[]}`},
	}
	for _, c := range cases {
		got, err := json.Marshal(c.v)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != c.want {
			t.Errorf("%T:\n got %s\nwant %s", c.v, got, c.want)
		}
	}
}

// TestStatusRoundTrip: the CLI reads the daemon's status back into the
// same type, durations included; a duration it cannot read is an error,
// not a silent "none".
func TestStatusRoundTrip(t *testing.T) {
	want := Status{Capacity: 1, Sessions: 2, SessionDefaults: SessionPolicy{TTL: 90 * time.Minute, Idle: 1500 * time.Millisecond, Bytes: 3, Inodes: 4}}
	b, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	var got Status
	if err := json.Unmarshal(b, &got); err != nil || got != want {
		t.Errorf("round trip of %s: %+v, %v; want %+v", b, got, err, want)
	}
	for _, bad := range []string{`{"ttl":"forever","idle":"0s"}`, `{"ttl":"0s","idle":"-1s"}`, `{"ttl":3600000000000,"idle":"0s"}`} {
		var p SessionPolicy
		if err := json.Unmarshal([]byte(bad), &p); err == nil {
			t.Errorf("%s read as %+v, want an error", bad, p)
		}
	}
}
