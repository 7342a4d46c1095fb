package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestRedactingWriter(t *testing.T) {
	lines := []string{
		`rx 26: WRITE n2 {Fh 1 [0 +4096)  L 0 WRONLY,LARGEFILE}"hunter2-"... 4096b p8817`,
		`rx 30: SETXATTR n3 {sz 6 f0} "user.note" "secret" 6b p1`,
		`tx 31:     OK, 42b data "hunter2-"...`,
		`tx 32:     OK, 6b data "secret"`,
	}
	var buf bytes.Buffer
	w := redactingWriter{&buf}
	for _, l := range lines {
		w.Write([]byte(l + "\n"))
	}
	out := buf.String()
	for _, secret := range []string{"hunter2", "secret\""} {
		if strings.Contains(out, secret) {
			t.Errorf("redacted output still has %q:\n%s", secret, out)
		}
	}
	for _, keep := range []string{"4096 bytes", `"user.note"`, "42b data", "WRITE n2"} {
		if !strings.Contains(out, keep) {
			t.Errorf("redacted output lost %q:\n%s", keep, out)
		}
	}
}
