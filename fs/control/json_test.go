package control

import (
	"encoding/json"
	"testing"
	"time"
)

// TestWireFormat pins the JSON that scripts read (user.spoolfs.status,
// user.spoolfs.usage, 'session ls --json', 'status --json'): every field,
// its name and its place. The strings are what the daemon and the CLI
// printed before these types were shared, so a change here is a change
// users see.
func TestWireFormat(t *testing.T) {
	usage := SessionUsage{Bytes: 4, Inodes: 5, RAM: 6, Disk: 7, OpenFiles: 8}
	info := &SessionInfo{Name: "n", Path: "/p/n", Owner: 1000, Created: time.Date(2024, 1, 2, 3, 4, 5, 6, time.UTC),
		Expires: Never, Reason: None, TTL: "2h0m0s", Idle: "0s", Size: 1, Inodes: 2, PID: 3, Usage: usage}
	status := &Status{Capacity: 1, Used: 2, Inodes: 3, InodesUsed: 4, RAMBudget: 5, RAMUsed: 6, DiskUsed: 7, SpillThreshold: 8,
		Spills: 9, Files: 10, SpilledFiles: 11, Sessions: 12,
		SessionDefaults: SessionPolicy{TTL: time.Hour, Idle: time.Second, Bytes: 13, Inodes: 14}}
	cases := []struct {
		v    any
		want string
	}{
		{info, `{"name":"n","path":"/p/n","uid":1000,"created":"2024-01-02T03:04:05.000000006Z","expires":"never","ends_by":"none","ttl":"2h0m0s","idle":"0s","size_limit":1,"inodes_limit":2,"pid":3,"usage":{"bytes":4,"inodes":5,"ram":6,"disk":7,"open_files":8}}`},
		{usage, `{"bytes":4,"inodes":5,"ram":6,"disk":7,"open_files":8}`},
		{status, `{"capacity":1,"used":2,"inodes":3,"inodes_used":4,"ram_budget":5,"ram_used":6,"disk_used":7,"spill_threshold":8,"spills":9,"files":10,"spilled_files":11,"sessions":12,"session_defaults":{"TTL":3600000000000,"Idle":1000000000,"Bytes":13,"Inodes":14}}`},
		{StatusReport{Mount: status, Sessions: []*SessionInfo{info}}, `{"mount":{"capacity":1,"used":2,"inodes":3,"inodes_used":4,"ram_budget":5,"ram_used":6,"disk_used":7,"spill_threshold":8,"spills":9,"files":10,"spilled_files":11,"sessions":12,"session_defaults":{"TTL":3600000000000,"Idle":1000000000,"Bytes":13,"Inodes":14}},"sessions":[{"name":"n","path":"/p/n","uid":1000,"created":"2024-01-02T03:04:05.000000006Z","expires":"never","ends_by":"none","ttl":"2h0m0s","idle":"0s","size_limit":1,"inodes_limit":2,"pid":3,"usage":{"bytes":4,"inodes":5,"ram":6,"disk":7,"open_files":8}}]}`},
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
