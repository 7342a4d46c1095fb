package main

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestManPageUpToDate fails when spoolfs.8 no longer matches the flags:
// run 'make man' to regenerate it.
func TestManPageUpToDate(t *testing.T) {
	var buf bytes.Buffer
	writeMan(&buf)
	want, err := os.ReadFile("spoolfs.8")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Error("spoolfs.8 is out of date with the flag definitions: run 'make man'")
	}
	for _, flag := range []string{`\-\-spill\-threshold`, `\-o spill_threshold`, `\-\-session\-ttl`, `\-\-prefix`} {
		if !strings.Contains(buf.String(), flag) {
			t.Errorf("the page does not mention %s", flag)
		}
	}
	if man, err := exec.LookPath("man"); err == nil {
		cmd := exec.Command(man, "-l", "--warnings", "spoolfs.8")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil || stderr.Len() > 0 {
			t.Errorf("man -l spoolfs.8: %v\n%s", err, stderr.String())
		}
	}
}

// TestHelpListsEveryFlag: 'spoolfs mount --help' shows each flag with its
// unit (the value type) and the default where there is one.
func TestHelpListsEveryFlag(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"mount", "--help"}, &out, &errOut); code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{"--size size", "--ram size", "--spill-threshold size", "--session-ttl duration", "--mode octal", "(default 1777)", "default 50%"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("mount --help lacks %q", want)
		}
	}
}
