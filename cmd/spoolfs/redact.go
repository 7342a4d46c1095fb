package main

import (
	"io"
	"regexp"
)

// go-fuse's request trace (--debug) quotes the first bytes of every
// payload: file contents in WRITE and READ, values in SETXATTR and
// GETXATTR. spoolfs's logs never carry file contents, so the trace goes
// through redactingWriter, which keeps the sizes and drops the bytes.
var (
	// rx ... "<bytes>"... 4096b   (request payloads)
	inPayload = regexp.MustCompile(`"(?:[^"\\]|\\.)*"(?:\.\.\.)? (\d+)b\b`)
	// tx ... 4096b data "<bytes>"...   (reply payloads)
	outPayload = regexp.MustCompile(`(\d+)b data "(?:[^"\\]|\\.)*"(?:\.\.\.)?`)
)

type redactingWriter struct{ w io.Writer }

func (r redactingWriter) Write(p []byte) (int, error) {
	line := inPayload.ReplaceAll(p, []byte("<${1} bytes>"))
	line = outPayload.ReplaceAll(line, []byte("${1}b data <redacted>"))
	if _, err := r.w.Write(line); err != nil {
		return 0, err
	}
	return len(p), nil
}
