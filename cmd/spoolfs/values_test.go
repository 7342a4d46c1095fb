package main

import (
	"math"
	"strconv"
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
		{in: "1.5KiB", bytes: 1536},
		{in: "0.5k", bytes: 512},
		{in: "4E", bytes: 4 << 60},
		{in: "0.5%", percent: 0.5},
		// Each of these was once read as 0 bytes ("no limit" for --size)
		// or as NaN percent, which resolved to 0.
		{in: "0.5", bad: true},  // half a byte
		{in: "1.3k", bad: true}, // 1331.2 bytes
		{in: "0.0000001G", bad: true},
		{in: "NaN%", bad: true},
		{in: "nan%", bad: true},
		{in: "Inf%", bad: true},
		{in: "+Inf%", bad: true},
		{in: "-0", bad: true},
		{in: "+1", bad: true},
		{in: "1e400", bad: true},
		{in: "1e2%", bad: true},
		{in: "0x10", bad: true},
		{in: "0x1p4%", bad: true},
		{in: "1,5G", bad: true}, // once 15 GiB: the comma was a thousands separator
		{in: "1.", bad: true},
		{in: ".5k", bad: true},
		{in: "%", bad: true},
		{in: "1e-320%", bad: true},
		{in: "4.0000000000000000001E", bad: true},
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

func TestCountValue(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "100000": 100000, "100k": 100 << 10, "1.5k": 1536} {
		var c count
		if err := c.Set(in); err != nil || c.n != want {
			t.Errorf("count %q = %d, %v; want %d", in, c.n, err, want)
		}
	}
	for _, in := range []string{"0.5", "1.1", "50%", "NaN", "-1", "1e3", "many"} {
		var c count
		if err := c.Set(in); err == nil {
			t.Errorf("count %q = %d; want an error", in, c.n)
		}
	}
}

func TestDurationValue(t *testing.T) {
	for in, want := range map[string]time.Duration{"0": 0, "0s": 0, "0h0m": 0, "90s": 90 * time.Second, "1.5h": 90 * time.Minute, "1ns": 1} {
		var d duration
		if err := d.Set(in); err != nil || time.Duration(d) != want {
			t.Errorf("duration %q = %v, %v; want %v", in, time.Duration(d), err, want)
		}
	}
	// "0.1ns" rounds to 0, which means "none": a limit asked for must not
	// become no limit.
	for _, in := range []string{"0.1ns", "0.5ns", "-0s", "-1s", "NaN", "Inf", "1e3h", "9999999999h", "", "10"} {
		var d duration
		if err := d.Set(in); err == nil {
			t.Errorf("duration %q = %v; want an error", in, time.Duration(d))
		}
	}
}

// TestResolveValues: a percentage becomes at least one byte of its base or
// an error naming the flag; it never comes out as 0, which means "no
// limit" (--size, --session-size) or "no RAM" (--ram).
func TestResolveValues(t *testing.T) {
	const disk, ram = 100 << 30, 8 << 30
	resolve := func(args ...string) (*mountConfig, error) {
		t.Helper()
		var c mountConfig
		if err := newMountFlags(&c).Parse(args); err != nil {
			t.Fatalf("%q: %v", args, err)
		}
		return &c, c.resolveValues(disk, ram)
	}
	c, err := resolve()
	if err != nil || c.limits.Bytes != disk/2 || c.spill.RAMBudget != ram/4 || c.spill.Threshold != defaultThreshold || c.limits.Inodes != ram/8192 {
		t.Errorf("defaults: %+v, %+v, %v", c.limits, c.spill, err)
	}
	c, err = resolve("--size", "0", "--session-size", "1G", "--ram", "0.5%", "--spill-threshold", "50%")
	if err != nil || c.limits.Bytes != 0 || c.fs.Sessions.Bytes != 1<<30 || c.spill.RAMBudget != ram/200 || c.spill.Threshold != ram/400 {
		t.Errorf("explicit values: %+v, %+v, %+v, %v", c.limits, c.fs.Sessions, c.spill, err)
	}
	bad := map[string][]string{
		"--session-size":    {"--size", "0", "--session-size", "50%"},                 // a share of no limit
		"--ram":             {"--ram", "0.00000000000001%"},                           // less than a byte
		"--spill-threshold": {"--ram", "0", "--spill-threshold", "50%"},               // a share of nothing
		"--size":            {"--size", "0.000000000000000000000000000000000000001%"}, // less than a byte
	}
	for flag, args := range bad {
		c, err := resolve(args...)
		if err == nil || !strings.HasPrefix(err.Error(), flag+" ") {
			t.Errorf("%q: %+v, %+v, %v; want an error naming %s", args, c.limits, c.spill, err, flag)
		}
	}
	var full mountConfig // --size defaults to 50%, here of a full spill disk
	newMountFlags(&full) // puts the defaults in
	if err := full.resolveValues(0, ram); err == nil || !strings.HasPrefix(err.Error(), "--size ") {
		t.Errorf("50%% of a full disk: %v; want an error naming --size", err)
	}
}

// TestFreeBytes: a filesystem's figures never wrap into a negative or
// tiny free space (which --size 50% would then take a share of).
func TestFreeBytes(t *testing.T) {
	cases := []struct{ blocks, size, want int64 }{
		{1000, 4096, 4096000}, {0, 4096, 0}, {-5, 4096, 0}, {5, 0, 0},
		{math.MaxInt64, 4096, maxBytes}, {1 << 52, 1 << 12, maxBytes}, {1 << 50, 1 << 12, 1 << 62},
	}
	for _, c := range cases {
		if got := freeBytes(c.blocks, c.size); got != c.want {
			t.Errorf("freeBytes(%d, %d) = %d, want %d", c.blocks, c.size, got, c.want)
		}
	}
}

func TestApplyOptions(t *testing.T) {
	var c mountConfig
	flags := newMountFlags(&c)
	err := applyOptions(flags, []string{"size=2G,ram=256M,spill_threshold=4M,session_ttl=2h,allow_other,rw,nosuid,x-systemd.automount,_netdev"})
	if err != nil {
		t.Fatal(err)
	}
	g := c.given
	if g.size.bytes != 2<<30 || g.ram.bytes != 256<<20 || g.threshold.bytes != 4<<20 || !c.allowOther {
		t.Errorf("options not applied: size %d ram %d threshold %d allow_other %v", g.size.bytes, g.ram.bytes, g.threshold.bytes, c.allowOther)
	}
	for _, bad := range []string{"bogus=1", "size", "ram=lots", "ro", "o=x", "mode=99"} {
		if err := applyOptions(newMountFlags(&mountConfig{}), []string{bad}); err == nil {
			t.Errorf("-o %s accepted", bad)
		} else if strings.Contains(err.Error(), "\n") {
			t.Errorf("-o %s: error spans lines: %q", bad, err)
		}
	}
}

// saysZero: the text of a value has zeros and no other digit, so that 0
// ("no limit", "none") is what it asked for.
func saysZero(s string) bool {
	return strings.Contains(s, "0") && !strings.ContainsAny(s, "123456789")
}

// The fuzz targets below state what each accepted value must be: a whole
// number of bytes from 0 to maxBytes, 0 only when the text says 0, or a
// finite percentage in (0, 100] that resolves to at least a byte or is
// refused. NaN%, 0.5 and the like once came out as 0: no limit.

// FuzzParseSize: any input is a size as above or a one-line error, never a
// panic.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"0", "2G", "512MiB", "1.5GB", "50%", "-1", "1e9", "0x10", "%", "1.%", "NaN%", "+Inf%",
		"NaN", "Inf", "-Inf%", "0.5", "0.5%", "1e400", "1e-400%", "-0", "1.3k", "1,5G", "4E", "4.0000000000000000001E", "0x1p4%", "1e2%"} {
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
		if pct != 0 {
			if !(pct > 0 && pct <= 100) || n != 0 {
				t.Fatalf("parseSize(%q) = %d, %v%%", s, n, pct)
			}
			size := byteSize{percent: pct, text: s}
			for _, base := range []int64{0, 1, 4096, 1 << 40, math.MaxInt64} {
				if got, err := size.resolve(base, "base"); err == nil && (got < 1 || got > max(base, 1) || got > maxBytes) {
					t.Errorf("%q of %d resolved to %d", s, base, got)
				}
			}
			return
		}
		if n < 0 || n > maxBytes || n == 0 && !saysZero(s) {
			t.Fatalf("parseSize(%q) = %d", s, n)
		}
		// Whole bytes: a fraction is exact, not rounded (1.3k is not 1331).
		number, unit, _ := strings.Cut(strings.TrimSpace(s), " ")
		if i := strings.IndexFunc(number, func(r rune) bool { return r != '.' && (r < '0' || r > '9') }); i >= 0 {
			number, unit = number[:i], number[i:]+unit
		}
		scale, _, err := parseSize("1" + unit)
		x, ferr := strconv.ParseFloat(number, 64)
		if err != nil || ferr != nil {
			t.Fatalf("parseSize(%q) = %d, but %q is not a unit or %q not a number", s, n, unit, number)
		}
		if want := x * float64(scale); math.Abs(want-float64(n)) > want*1e-12 {
			t.Errorf("parseSize(%q) = %d, want %v", s, n, want)
		}
	})
}

// FuzzMountOptions: any -o string is applied or refused with one line, and
// what is applied resolves to sane values or is refused: never "no limit"
// or "none" unless an option said 0.
func FuzzMountOptions(f *testing.F) {
	for _, s := range []string{"size=2G,ram=256M", "allow_other", "x-systemd.requires=a", "ro", "mode=1777,uid=0", "inodes=100k,,", "session_ttl=2h,lifetime=-1s",
		"size=NaN%", "size=0.5", "inodes=0.5", "ram=NaN%", "ram=0.5", "spill_threshold=NaN%", "session_size=NaN%", "size=0,session_size=50%",
		"ram=0,spill_threshold=50%", "session_ttl=0.1ns", "lifetime=-0s", "size=+Inf%", "size=1e400", "session_inodes=-0", "session_idle=NaNh", "size=0x10"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var c mountConfig
		err := applyOptions(newMountFlags(&c), []string{s})
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("multi-line error for %q: %q", s, err)
			}
			return
		}
		given := map[string]string{} // the last value of each option
		for _, opt := range strings.Split(s, ",") {
			key, value, _ := strings.Cut(strings.TrimSpace(opt), "=")
			given[strings.ReplaceAll(key, "_", "-")] = value
		}
		askedZero := func(name string) bool { v, ok := given[name]; return ok && saysZero(v) }
		if err := c.resolveValues(1<<40, 8<<30); err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("multi-line error for %q: %q", s, err)
			}
			return
		}
		sessions := c.fs.Sessions
		values := map[string]int64{"size": c.limits.Bytes, "ram": c.spill.RAMBudget, "inodes": c.limits.Inodes, "spill-threshold": c.spill.Threshold,
			"session-size": sessions.Bytes, "session-inodes": sessions.Inodes,
			"session-ttl": int64(sessions.TTL), "session-idle": int64(sessions.Idle), "lifetime": int64(c.lifetime)}
		noneByDefault := map[string]bool{"session-size": true, "session-inodes": true, "session-ttl": true, "session-idle": true, "lifetime": true}
		for name, v := range values {
			_, set := given[name]
			zeroOK := askedZero(name) || !set && (noneByDefault[name] || name == "spill-threshold" && c.spill.RAMBudget == 0)
			if v < 0 || v == 0 && !zeroOK {
				t.Errorf("-o %q: %s resolved to %d", s, name, v)
			}
		}
		for _, v := range []int64{c.limits.Bytes, c.spill.RAMBudget, c.limits.Inodes, c.spill.Threshold, sessions.Bytes, sessions.Inodes} {
			if v > maxBytes {
				t.Errorf("-o %q: a value resolved to %d", s, v)
			}
		}
	})
}

// FuzzDuration: durations parse or fail, are never negative, and are 0
// only when the text says 0 ("0.1ns" once did, meaning "none").
func FuzzDuration(f *testing.F) {
	for _, s := range []string{"0", "90s", "2h", "-1s", "1e3h", "10", "1h-1m", "0.1ns", "-0s", "NaN", "Inf", "+Infh", "9999999999h", "2562048h", "0.000000001s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var d duration
		if err := d.Set(s); err == nil && (d < 0 || d == 0 && !saysZero(s)) {
			t.Errorf("duration %q = %v", s, time.Duration(d))
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
