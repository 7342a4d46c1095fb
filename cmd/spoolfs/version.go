package main

import (
	"fmt"
	"io"
	"runtime/debug"
)

// versionInfo is what 'spoolfs version' says, read from the build
// information the Go toolchain stamps into every binary: no -ldflags, so
// 'go build', 'go install' and 'make build' all say it alike.
type versionInfo struct {
	Version  string `json:"version"`  // the module's version: a tag for 'go install ...@v1.2.3', "(devel)" from a checkout
	Commit   string `json:"commit"`   // vcs.revision; "" when built outside a git checkout
	Modified bool   `json:"modified"` // vcs.modified: built with changes not committed
	Go       string `json:"go"`
	GoFuse   string `json:"go_fuse"` // the go-fuse module the binary was built with
}

const goFuseModule = "github.com/hanwen/go-fuse/v2"

// readVersion reads this binary's build information.
func readVersion() versionInfo {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return versionInfo{}
	}
	return versionOf(bi)
}

// versionOf picks what versionInfo says out of bi; every field it cannot
// find stays empty rather than guessed.
func versionOf(bi *debug.BuildInfo) versionInfo {
	v := versionInfo{Version: bi.Main.Version, Go: bi.GoVersion}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Commit = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	for _, dep := range bi.Deps {
		if dep.Path == goFuseModule {
			v.GoFuse = dep.Version
			switch r := dep.Replace; {
			case r != nil && r.Version != "" && r.Version != "(devel)":
				v.GoFuse = r.Version
			case r != nil: // a directory: the release it is a patched copy of
				v.GoFuse = dep.Version + " (patched: " + r.Path + ")"
			}
		}
	}
	return v
}

// text is the one-line form, as 'rclone version' starts: what a bug
// report needs.
func (v versionInfo) text() string {
	commit := orUnknown(v.Commit)
	if v.Modified {
		commit += " (modified)"
	}
	return fmt.Sprintf("spoolfs %s, commit %s, %s, go-fuse %s", orUnknown(v.Version), commit, orUnknown(v.Go), orUnknown(v.GoFuse))
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

func runVersion(args []string, stdout, stderr io.Writer) int {
	var asJSON bool
	f := newJSONFlags("version", &asJSON)
	if code, ok := parseFlags(f, args, "Usage: spoolfs version [--json]", stdout, stderr); !ok {
		return code
	}
	if f.NArg() != 0 {
		fmt.Fprintf(stderr, "spoolfs version: unexpected argument %q\n", f.Arg(0))
		return exitUsage
	}
	v := readVersion()
	if asJSON {
		printJSON(stdout, v)
		return exitOK
	}
	fmt.Fprintln(stdout, v.text())
	return exitOK
}
