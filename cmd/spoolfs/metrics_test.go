package main

import (
	"strings"
	"testing"
)

func TestParseMetricsAddr(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"9780", "127.0.0.1:9780"},
		{":9780", "127.0.0.1:9780"},
		{"127.0.0.1:9780", "127.0.0.1:9780"},
		{"0.0.0.0:9780", "0.0.0.0:9780"},
		{"localhost:9780", "localhost:9780"},
		{"[::1]:9780", "[::1]:9780"},
		{"[::]:9780", "[::]:9780"},
		{"[]:9780", "127.0.0.1:9780"},
	} {
		got, err := parseMetricsAddr(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("parseMetricsAddr(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"x", ":", ":0", "0", "70000", ":-1", ":http", "::1", "host:", "http://host:9780", "host/x:9780", "a b:9780", "1.2.3.4:5:6"} {
		if got, err := parseMetricsAddr(in); err == nil {
			t.Errorf("parseMetricsAddr(%q) = %q, want an error", in, got)
		} else if !strings.Contains(err.Error(), "--metrics") || strings.Contains(err.Error(), "\n") {
			t.Errorf("parseMetricsAddr(%q): %q is not a one-line error naming --metrics", in, err)
		}
	}
}

// TestMetricsBadAddrIsUsageError: a bad --metrics or -o metrics= is exit 2
// with one line, before anything is tried.
func TestMetricsBadAddrIsUsageError(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"mount", "--metrics", "nonsense", dir},
		{"mount", "-o", "metrics=:99999", dir},
	} {
		var out, errOut strings.Builder
		if code := run(args, &out, &errOut); code != exitUsage {
			t.Errorf("%v: exit %d, want %d (%s)", args, code, exitUsage, errOut.String())
		}
		if msg := errOut.String(); strings.Count(msg, "\n") != 1 || !strings.Contains(msg, "metrics") {
			t.Errorf("%v: want one line about --metrics, got %q", args, msg)
		}
	}
}
