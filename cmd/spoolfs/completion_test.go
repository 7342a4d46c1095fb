package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func completionScript(t *testing.T, shell string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	if code := run([]string{"completion", shell}, &out, &errOut); code != exitOK {
		t.Fatalf("completion %s: exit %d: %s", shell, code, errOut.String())
	}
	return out.String()
}

// TestCompletion: every shell's script offers every command and every
// flag of each (generic mount options too), and the shell reads it.
func TestCompletion(t *testing.T) {
	var c mountConfig
	var o sessionNewOptions
	var b bool
	flagSets := []*pflag.FlagSet{newMountFlags(&c), newSessionNewFlags(&o), newUmountFlags(&b), newJSONFlags("status", &b)}
	for _, shell := range completionShells {
		script := completionScript(t, shell)
		for _, cmd := range []string{"mount", "umount", "session", "status", "completion", "man", "version", "help", "new", "ls", "rm", "touch"} {
			if !strings.Contains(script, cmd) {
				t.Errorf("%s completion lacks the command %s", shell, cmd)
			}
		}
		for _, fs := range flagSets {
			fs.VisitAll(func(f *pflag.Flag) {
				// bash lists --name, zsh --name or --name=, fish -l name.
				if !strings.Contains(script, "--"+f.Name) && !strings.Contains(script, "-l "+f.Name+" ") {
					t.Errorf("%s completion lacks --%s", shell, f.Name)
				}
				if f.Shorthand != "" && !strings.Contains(script, "-"+f.Shorthand) {
					t.Errorf("%s completion lacks -%s", shell, f.Shorthand)
				}
			})
		}
	}
	if code := run([]string{"completion", "tcsh"}, &bytes.Buffer{}, &bytes.Buffer{}); code != exitUsage {
		t.Errorf("completion tcsh: exit %d, want %d", code, exitUsage)
	}
}

// shell finds a shell, or skips the test without it; under CI it must be
// there (scripts/deps installs it).
func shell(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not installed (scripts/deps installs it)", name)
		}
		t.Skipf("%s is not installed", name)
	}
	return p
}

// runShell runs the shell with args, the completion script at $SCRIPT,
// and returns what it printed.
func runShell(t *testing.T, sh, completion string, args ...string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "spoolfs-completion")
	if err := os.WriteFile(file, []byte(completion), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(sh, args...)
	cmd.Env = append(os.Environ(), "SCRIPT="+file, "HOME="+t.TempDir(), "XDG_CONFIG_HOME="+t.TempDir(), "XDG_DATA_HOME="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %q: %v\n%s", sh, args, err, out)
	}
	return string(out)
}

func TestBashCompletionParses(t *testing.T) {
	bash := shell(t, "bash")
	script := completionScript(t, "bash")
	if got := runShell(t, bash, script, "-c", `bash -n "$SCRIPT" && source "$SCRIPT" && complete -p spoolfs`); !strings.Contains(got, "_spoolfs") {
		t.Errorf("complete -p spoolfs: %q", got)
	}
}

// TestZshCompletionLoads: the zsh script is native (compdef, _arguments,
// no bashcompinit): it parses, and compinit then has _spoolfs complete
// spoolfs.
func TestZshCompletionLoads(t *testing.T) {
	script := completionScript(t, "zsh")
	if !strings.HasPrefix(script, "#compdef spoolfs\n") || !strings.Contains(script, "_arguments") || strings.Contains(script, "bashcompinit") {
		t.Errorf("zsh completion is not native:\n%s", script)
	}
	zsh := shell(t, "zsh")
	runShell(t, zsh, script, "-f", "-c", `zsh -n "$SCRIPT"`)
	got := runShell(t, zsh, script, "-f", "-c", `autoload -U compinit && compinit -u -d "$HOME/zcompdump" && source "$SCRIPT" && print -r -- $_comps[spoolfs]`)
	if strings.TrimSpace(got) != "_spoolfs" {
		t.Errorf("after compinit and source, spoolfs completes with %q, want _spoolfs", got)
	}
}

// TestFishCompletion asks fish what it would offer after each prefix.
func TestFishCompletion(t *testing.T) {
	fish := shell(t, "fish")
	script := completionScript(t, "fish")
	runShell(t, fish, script, "-c", `fish -n "$SCRIPT"`)
	for line, want := range map[string][]string{
		"spoolfs ":                   {"mount", "umount", "session", "status", "completion", "version"},
		"spoolfs session ":           {"new", "ls", "rm", "touch"},
		"spoolfs session new --m":    {"--mode"},
		"spoolfs mount --spill-":     {"--spill-threshold", "--spill-dir"},
		"spoolfs mount -":            {"-f", "-o"},
		"spoolfs umount -":           {"-l"},
		"spoolfs completion ":        {"bash", "zsh", "fish"},
		"spoolfs status --j":         {"--json"},
		"spoolfs session ls --j":     {"--json"},
		"spoolfs version --j":        {"--json"},
		"spoolfs mount --session-t":  {"--session-ttl"},
		"spoolfs session new --pref": {"--prefix"},
	} {
		out := runShell(t, fish, script, "-c", `source "$SCRIPT"; complete -C $argv[1]`, line)
		var offered []string
		for _, l := range strings.Split(out, "\n") {
			if word, _, _ := strings.Cut(l, "\t"); word != "" {
				offered = append(offered, word)
			}
		}
		for _, w := range want {
			if !slices.Contains(offered, w) {
				t.Errorf("fish offers %q after %q, want %s among them", offered, line, w)
			}
		}
	}
}
