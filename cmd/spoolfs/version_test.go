package main

import (
	"encoding/json"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

// TestVersionCommand: 'spoolfs version' and 'spoolfs --version' print one
// line with the Go and go-fuse versions this binary was built with, and
// --json the same fields, snake_case, as README documents them.
func TestVersionCommand(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		var out, errOut strings.Builder
		if code := run(args, &out, &errOut); code != exitOK {
			t.Fatalf("%v: exit %d: %s", args, code, errOut.String())
		}
		line := out.String()
		if !strings.HasPrefix(line, "spoolfs ") || strings.Count(line, "\n") != 1 ||
			!strings.Contains(line, runtime.Version()) || !strings.Contains(line, "go-fuse v2.") {
			t.Errorf("%v: %q, want one line with spoolfs, %s and go-fuse v2", args, line, runtime.Version())
		}
	}
	var out, errOut strings.Builder
	if code := run([]string{"version", "--json"}, &out, &errOut); code != exitOK {
		t.Fatalf("version --json: exit %d: %s", code, errOut.String())
	}
	var fields map[string]any
	if err := json.Unmarshal([]byte(out.String()), &fields); err != nil {
		t.Fatalf("version --json: %v: %s", err, out.String())
	}
	for _, key := range []string{"version", "commit", "modified", "go", "go_fuse"} {
		if _, ok := fields[key]; !ok {
			t.Errorf("version --json lacks %q: %s", key, out.String())
		}
	}
	if fields["go"] != runtime.Version() || !strings.HasPrefix(fields["go_fuse"].(string), "v2.") {
		t.Errorf("version --json: %s", out.String())
	}
	if code := run([]string{"version", "extra"}, &out, &errOut); code != exitUsage {
		t.Errorf("version extra: exit %d, want %d", code, exitUsage)
	}
}

// TestVersionOf: the commit and whether the tree was modified come from
// the toolchain's vcs stamp, and go-fuse's version from its replacement
// when go.mod replaces it.
func TestVersionOf(t *testing.T) {
	bi := &debug.BuildInfo{
		GoVersion: "go1.99",
		Main:      debug.Module{Path: "github.com/spoolfs/spoolfs", Version: "v1.2.3"},
		Deps: []*debug.Module{
			{Path: "github.com/spf13/pflag", Version: "v1.0.0"},
			{Path: goFuseModule, Version: "v2.12.1", Replace: &debug.Module{Path: "../go-fuse", Version: "v2.12.2-fork"}},
		},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc123"}, {Key: "vcs.modified", Value: "true"}},
	}
	want := versionInfo{Version: "v1.2.3", Commit: "abc123", Modified: true, Go: "go1.99", GoFuse: "v2.12.2-fork"}
	if got := versionOf(bi); got != want {
		t.Errorf("versionOf = %+v, want %+v", got, want)
	}
	if got, want := want.text(), "spoolfs v1.2.3, commit abc123 (modified), go1.99, go-fuse v2.12.2-fork"; got != want {
		t.Errorf("text = %q, want %q", got, want)
	}
	bi.Deps[1].Replace = &debug.Module{Path: "./fs/internal/go-fuse", Version: "(devel)"}
	if got, want := versionOf(bi).GoFuse, "v2.12.1 (patched: ./fs/internal/go-fuse)"; got != want {
		t.Errorf("go-fuse replaced by a directory: %q, want %q", got, want)
	}
	if got, want := (versionInfo{Go: "go1.99"}).text(), "spoolfs unknown, commit unknown, go1.99, go-fuse unknown"; got != want {
		t.Errorf("text without build info = %q, want %q", got, want)
	}
}
