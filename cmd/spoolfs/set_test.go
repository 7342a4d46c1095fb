package main

import (
	"slices"
	"strings"
	"testing"
	"time"

	spoolfs "github.com/spoolfs/spoolfs/fs"
	"github.com/spoolfs/spoolfs/fs/control"
)

func TestParseLiveLimits(t *testing.T) {
	const freeDisk, physical = 1000 << 20, 4000 << 20
	cur := spoolfs.Limits{Size: 100 << 20, Inodes: 1000, RAM: 64 << 20, SpillThreshold: 16 << 20,
		Sessions: control.SessionPolicy{TTL: time.Hour, Bytes: 10 << 20}}
	with := func(fn func(*spoolfs.Limits)) spoolfs.Limits { l := cur; fn(&l); return l }
	cases := []struct {
		value string
		want  spoolfs.Limits
		err   string // "": none
	}{
		{value: "size=2G", want: with(func(l *spoolfs.Limits) { l.Size = 2 << 30 })},
		{value: "size=10%,size=50%", want: with(func(l *spoolfs.Limits) { l.Size = 500 << 20 })}, // the last wins, as in fstab and -o
		{value: "ram=1%", want: with(func(l *spoolfs.Limits) { l.RAM = (4000 << 20) / 100 })},
		{value: "ram=8M", want: with(func(l *spoolfs.Limits) { l.RAM, l.SpillThreshold = 8<<20, 8<<20 })}, // the threshold follows
		{value: "ram=8M,spill_threshold=50%", want: with(func(l *spoolfs.Limits) { l.RAM, l.SpillThreshold = 8<<20, 4<<20 })},
		{value: "inodes=10k,session-inodes=5", want: with(func(l *spoolfs.Limits) { l.Inodes, l.Sessions.Inodes = 10<<10, 5 })},
		{value: "session_size=50%,session_ttl=0,session_idle=5m", want: with(func(l *spoolfs.Limits) {
			l.Sessions.Bytes, l.Sessions.TTL, l.Sessions.Idle = 50<<20, 0, 5*time.Minute
		})},
		{value: "size=0", want: with(func(l *spoolfs.Limits) { l.Size = 0 })},
		{value: "spill_threshold=128M", err: "above --ram"},
		{value: "session_size=200M", err: "above --size"},
		{value: "size=0,session_size=10%", err: "no limit"},
		{value: "size=100,session_size=0", err: "too small"},
		{value: "size=1x", err: "not a size"},
		{value: "spill_dir=/tmp", err: "unknown option"}, // not one a live mount can change
		{value: "mode=0700", err: "unknown option"},
	}
	for _, c := range cases {
		got, err := parseLiveLimits(c.value, cur, freeDisk, physical)
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%q: error %v, want one saying %q", c.value, err, c.err)
		case c.err == "" && err != nil:
			t.Errorf("%q: %v", c.value, err)
		case c.err == "" && got != c.want:
			t.Errorf("%q: got %+v, want %+v", c.value, got, c.want)
		case c.err != "" && got != cur:
			t.Errorf("%q: refused, but returned %+v", c.value, got)
		}
	}
}

// TestRemountOptions: a remount's -o, as mount(8) passes it, is a remount,
// and only the options a live mount changes go to the daemon.
func TestRemountOptions(t *testing.T) {
	opts := []string{"rw,nosuid,nodev,relatime,remount,user_id=0,group_id=0,default_permissions,allow_other,max_read=1048576,size=128M,spill_dir=/x,session_ttl=1h"}
	if !isRemount(opts) || isRemount([]string{"size=1G,ram=2G"}) {
		t.Fatal("isRemount got a remount wrong")
	}
	if got, want := liveItems(opts), []string{"size=128M", "session_ttl=1h"}; !slices.Equal(got, want) {
		t.Errorf("liveItems = %q, want %q", got, want)
	}
}
