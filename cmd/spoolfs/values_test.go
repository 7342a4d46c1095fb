package main

import (
	"io"
	"strings"
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	cases := []struct {
		in      string
		bytes   int64
		percent float64
		bad     bool
	}{
		{in: "0", bytes: 0},
		{in: "4096", bytes: 4096},
		{in: "512MiB", bytes: 512 << 20},
		{in: "2G", bytes: 2 << 30}, // bare suffix is binary, like tmpfs
		{in: "2g", bytes: 2 << 30},
		{in: "1.5GB", bytes: 1_500_000_000},
		{in: "100k", bytes: 100 << 10},
		{in: "50%", percent: 50},
		{in: "100%", percent: 100},
		{in: "0%", bad: true},
		{in: "150%", bad: true},
		{in: "-1G", bad: true},
		{in: "12parsecs", bad: true},
		{in: "", bad: true},
		{in: "G", bad: true},
		{in: "99999999999999999999", bad: true},
		{in: "9EiB", bad: true},
	}
	for _, c := range cases {
		n, pct, err := parseSize(c.in)
		if c.bad {
			if err == nil {
				t.Errorf("parseSize(%q) = %d, %v; want an error", c.in, n, pct)
			}
			continue
		}
		if err != nil || n != c.bytes || pct != c.percent {
			t.Errorf("parseSize(%q) = %d, %v, %v; want %d, %v", c.in, n, pct, err, c.bytes, c.percent)
		}
	}
}

func TestApplyOptions(t *testing.T) {
	var c mountConfig
	flags := newMountFlags(&c, io.Discard)
	err := applyOptions(flags, []string{"size=2G,ram=256M,spill_threshold=4M,session_ttl=2h,allow_other,rw,nosuid,x-systemd.automount,_netdev"})
	if err != nil {
		t.Fatal(err)
	}
	if c.size.bytes != 2<<30 || c.ram.bytes != 256<<20 || c.threshold.bytes != 4<<20 || !c.allowOther {
		t.Errorf("options not applied: size %d ram %d threshold %d allow_other %v", c.size.bytes, c.ram.bytes, c.threshold.bytes, c.allowOther)
	}
	for _, bad := range []string{"bogus=1", "size", "ram=lots", "ro", "o=x", "mode=99"} {
		if err := applyOptions(newMountFlags(&mountConfig{}, io.Discard), []string{bad}); err == nil {
			t.Errorf("-o %s accepted", bad)
		} else if strings.Contains(err.Error(), "\n") {
			t.Errorf("-o %s: error spans lines: %q", bad, err)
		}
	}
}

// FuzzParseSize: any input is either a size or a one-line error, never a
// panic, never a negative size.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"0", "2G", "512MiB", "1.5GB", "50%", "-1", "1e9", "0x10", "%", "1.%", "NaN%", "+Inf%"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, pct, err := parseSize(s)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("multi-line error for %q", s)
			}
			return
		}
		if n < 0 || pct < 0 || pct > 100 {
			t.Errorf("parseSize(%q) = %d, %v", s, n, pct)
		}
	})
}

// FuzzMountOptions: any -o string is applied or refused with one line.
func FuzzMountOptions(f *testing.F) {
	for _, s := range []string{"size=2G,ram=256M", "allow_other", "x-systemd.requires=a", "ro", "mode=1777,uid=0", "inodes=100k,,", "session_ttl=2h,lifetime=-1s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var c mountConfig
		err := applyOptions(newMountFlags(&c, io.Discard), []string{s})
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Errorf("multi-line error for %q: %q", s, err)
		}
	})
}

// FuzzDuration: durations parse or fail, and are never negative.
func FuzzDuration(f *testing.F) {
	for _, s := range []string{"0", "90s", "2h", "-1s", "1e3h", "10", "1h-1m"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var d duration
		if err := d.Set(s); err == nil && d < 0 {
			t.Errorf("duration %q = %v", s, d)
		}
	})
}

func TestShortDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "now", -time.Second: "now", 45 * time.Second: "45s", 10 * time.Minute: "10m", time.Hour: "1h",
		9*time.Minute + 5*time.Second: "9m05s", 90 * time.Minute: "1h30m", 20 * time.Minute: "20m", 61 * time.Minute: "1h01m",
		50 * time.Hour: "2d2h",
	} {
		if got := shortDuration(d); got != want {
			t.Errorf("shortDuration(%v) = %q, want %q", d, got, want)
		}
	}
}
