package control

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParsePolicyDuration(t *testing.T) {
	cases := []struct {
		in      string
		ceiling time.Duration
		capped  bool
		want    time.Duration
		bad     bool
	}{
		{in: "2h", want: 2 * time.Hour},
		{in: "0", want: 0},
		{in: "none", want: 0},
		{in: " 90s ", want: 90 * time.Second},
		{in: "-5s", bad: true},
		{in: "abc", bad: true},
		{in: "12x", bad: true},
		{in: "3h", ceiling: 2 * time.Hour, capped: true, bad: true},
		{in: "0", ceiling: 2 * time.Hour, capped: true, bad: true},
		{in: "1h", ceiling: 2 * time.Hour, capped: true, want: time.Hour},
		{in: "3h", ceiling: 2 * time.Hour, capped: false, want: 3 * time.Hour},
		{in: "0s", want: 0},
		{in: "0.5s", want: 500 * time.Millisecond},
		// Not zero, yet once read as 0, which is "none".
		{in: "0.1ns", bad: true},
		{in: "0.9ns", bad: true},
		{in: "-0s", bad: true},
		{in: "NaN", bad: true},
		{in: "Inf", bad: true},
		{in: "+Infh", bad: true},
		{in: "1e3h", bad: true},
		{in: "9999999999h", bad: true},
		// Nothing is not "none": an empty shell variable must not make a
		// session unlimited.
		{in: "", bad: true},
		{in: " \t\n", bad: true},
	}
	for _, c := range cases {
		got, err := ParsePolicyDuration(c.in, c.ceiling, c.capped)
		if (err != nil) != c.bad || (!c.bad && got != c.want) {
			t.Errorf("ParsePolicyDuration(%q, %v, %v) = %v, %v", c.in, c.ceiling, c.capped, got, err)
		}
	}
}

func TestParsePolicyCount(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "none": 0, "4096": 4096, " 7 ": 7} {
		if got, err := ParsePolicyCount(in, 0, false); err != nil || got != want {
			t.Errorf("ParsePolicyCount(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"-1", "1.5", "0.5", "5G", "0x10", "99999999999999999999", "NaN", "Inf", "1e3", "-0", "", " "} {
		if got, err := ParsePolicyCount(in, 0, false); err == nil {
			t.Errorf("ParsePolicyCount(%q) = %d; want an error", in, got)
		}
	}
	if _, err := ParsePolicyCount("2048", 1024, true); err == nil {
		t.Error("a value above the ceiling was accepted")
	}
}

// TestCeilingIsTyped: the daemon tells a refusal by the ceiling (EPERM)
// from a bad value (EINVAL) by ErrCeiling alone.
func TestCeilingIsTyped(t *testing.T) {
	if _, err := ParsePolicyDuration("3h", 2*time.Hour, true); !errors.Is(err, ErrCeiling) {
		t.Errorf("duration above the ceiling: %v, want ErrCeiling", err)
	}
	if _, err := ParsePolicyCount("none", 10, true); !errors.Is(err, ErrCeiling) {
		t.Errorf("count of none under a ceiling: %v, want ErrCeiling", err)
	}
	for _, bad := range []string{"x", "-1"} {
		_, errD := ParsePolicyDuration(bad, time.Hour, true)
		_, errC := ParsePolicyCount(bad, 10, true)
		if errD == nil || errC == nil || errors.Is(errD, ErrCeiling) || errors.Is(errC, ErrCeiling) {
			t.Errorf("%q: %v, %v; want errors that are not ErrCeiling", bad, errD, errC)
		}
	}
}

func TestParseOwner(t *testing.T) {
	good := map[string]Owner{
		"0": {}, "none": {}, " none ": {}, "42": {PID: 42}, " 7 ": {PID: 7},
		"ancestor:0": {OfCaller: true}, "ancestor:3": {Ancestor: 3, OfCaller: true},
		"ancestor:1024": {Ancestor: MaxAncestor, OfCaller: true},
	}
	for in, want := range good {
		if got, err := ParseOwner(in); err != nil || got != want {
			t.Errorf("ParseOwner(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "-0", "x", "1.5", "ancestor:", "ancestor:-1", "ancestor:1025", "ancestor:x", "99999999999999999999"} {
		if got, err := ParseOwner(in); err == nil {
			t.Errorf("ParseOwner(%q) = %+v; want an error", in, got)
		}
	}
	for _, n := range []int{0, 1, MaxAncestor} {
		if got, err := ParseOwner(FormatAncestor(n)); err != nil || got != (Owner{Ancestor: n, OfCaller: true}) {
			t.Errorf("ParseOwner(FormatAncestor(%d)) = %+v, %v", n, got, err)
		}
	}
}

// FuzzPolicyValue: whatever a user writes into a session attribute is
// parsed or refused, never a panic, never a negative limit, never past a
// ceiling for a capped caller, and never "none" (0) unless that is what
// was written: "none", or zeros and no other digit (nothing is refused).
func FuzzPolicyValue(f *testing.F) {
	for _, s := range []string{"2h", "0", "none", "-1", "1e9", "9223372036854775807", "ancestor:3", "ancestor:-1", "ancestor:", "12",
		"NaN", "Inf", "+Inf", "0.5", "0.1ns", "-0", "-0s", "1e400", "0x10", "99999999999999999999", "2562048h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		const ceiling = time.Hour
		if d, err := ParsePolicyDuration(s, ceiling, true); err == nil && (d <= 0 || d > ceiling) {
			t.Errorf("duration %q -> %v past the ceiling", s, d)
		}
		if n, err := ParsePolicyCount(s, 1000, true); err == nil && (n <= 0 || n > 1000) {
			t.Errorf("count %q -> %d past the ceiling", s, n)
		}
		v := strings.TrimSpace(s)
		saysZero := v == "none" || strings.Contains(v, "0") && !strings.ContainsAny(v, "123456789")
		if d, err := ParsePolicyDuration(s, 0, false); err == nil && (d < 0 || d == 0 && !saysZero) {
			t.Errorf("duration %q -> %v", s, d)
		}
		if n, err := ParsePolicyCount(s, 0, false); err == nil && (n < 0 || n == 0 && !saysZero) {
			t.Errorf("count %q -> %d", s, n)
		}
		// An owner value is a PID, an ancestor within bounds, or none
		// only when it says so; never a negative PID.
		if o, err := ParseOwner(s); err == nil {
			switch {
			case o.OfCaller && (o.PID != 0 || o.Ancestor < 0 || o.Ancestor > MaxAncestor):
				t.Errorf("owner %q -> %+v", s, o)
			case !o.OfCaller && (o.Ancestor != 0 || o.PID < 0 || o.PID == 0 && !saysZero):
				t.Errorf("owner %q -> %+v", s, o)
			}
		}
	})
}

func TestParseUserLimits(t *testing.T) {
	got, err := ParseUserLimits(`{"1000":{"size_limit":1048576,"inodes_limit":10},"4242":null,"0":{}}`)
	if err != nil {
		t.Fatal(err)
	}
	want := map[uint32]*UserLimit{1000: {Bytes: 1 << 20, Inodes: 10}, 4242: nil, 0: {}}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for uid, w := range want {
		g, ok := got[uid]
		if !ok || (g == nil) != (w == nil) || (g != nil && *g != *w) {
			t.Errorf("uid %d: got %v, want %v", uid, g, w)
		}
	}
	for _, bad := range []string{``, `null`, `[]`, `{"x":{}}`, `{"-1":{}}`, `{"4294967296":{}}`,
		`{"1":{"size_limit":-1}}`, `{"1":{"inodes_limit":-5}}`, `{"1":{"size":5}}`, `{"1":{}} {}`, `{"1":{"size_limit":"1M"}}`} {
		if got, err := ParseUserLimits(bad); err == nil {
			t.Errorf("ParseUserLimits(%q) = %v, want an error", bad, got)
		}
	}
}
