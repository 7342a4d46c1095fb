package main

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// quoteName shows text that someone else chose (a session's name, a user
// name) in a table the way GNU ls shows file names on a terminal, with
// --quoting-style=shell-escape: unchanged when nothing in it means
// anything to a shell or a terminal; else in single quotes (or double
// quotes, if the only trouble is a single quote), with what cannot be
// shown as itself written as $'...' escapes. The result is one line that
// can be pasted back into bash or zsh, so a name can neither break a row
// nor forge one.
//
// One departure from ls: ls prints characters its locale calls printable
// as they are, and glibc calls Unicode format characters such as U+202E
// RIGHT-TO-LEFT OVERRIDE or U+200B ZERO WIDTH SPACE printable, so that a
// name could reorder or hide the columns after it. Every character that
// Go does not call printable (unicode.IsPrint: these, other spaces than
// ' ', line separators, unassigned code points) is escaped here, as
// \u202e: the code point, readable where ls's octal bytes would not be,
// and what bash and zsh read back in a UTF-8 locale.
func quoteName(s string) string {
	if s == "" {
		return "''"
	}
	quote, fitsDoubleQuotes, hasSingleQuote := false, true, false
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		needs, fits := shellClass(s[i:i+size], r, i, len(s))
		quote = quote || needs
		fitsDoubleQuotes = fitsDoubleQuotes && fits
		hasSingleQuote = hasSingleQuote || r == '\''
		i += size
	}
	switch {
	case !quote:
		return s
	case hasSingleQuote && fitsDoubleQuotes:
		return `"` + s + `"`
	}
	var b strings.Builder
	b.WriteByte('\'')
	inEscape := false // inside a $'...' run of escapes
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch esc := escapeOf(s[i:i+size], r); {
		case esc != "":
			if !inEscape {
				b.WriteString(`'$'`)
				inEscape = true
			}
			b.WriteString(esc)
		case r == '\'':
			b.WriteString(`'\''`) // closes either kind of quote and reopens '
			inEscape = false
		default:
			if inEscape {
				b.WriteString(`''`)
				inEscape = false
			}
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	b.WriteByte('\'')
	return b.String()
}

// shellClass says whether a character (ch, decoded as r) at byte i of a
// name n bytes long makes GNU ls quote the name, and whether it may stand
// inside double quotes as itself. It follows gnulib's quotearg for the
// shell styles.
func shellClass(ch string, r rune, i, n int) (needsQuotes, fitsDoubleQuotes bool) {
	switch {
	case escapeOf(ch, r) != "":
		return true, false
	case r >= utf8.RuneSelf, r >= '0' && r <= '9', r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z',
		strings.ContainsRune("%+,-./:@]_", r):
		return false, true
	case r == ' ' || r == '\'':
		return true, true
	case r == '#' || r == '~': // a comment or a home directory only at the start
		return i == 0, i == 0
	case r == '{' || r == '}': // a brace group only alone
		return n == 1, n == 1
	}
	return true, false // ! " $ & ( ) * ; < = > ? [ \ ^ ` |
}

// escapeOf is the $'...' escape for one character (ch, decoded as r), or
// "" if it shows as itself: C escapes for the usual controls, octal for
// other control bytes and bytes that are not UTF-8 (as ls writes them),
// \uXXXX for any other character that is not printable.
func escapeOf(ch string, r rune) string {
	switch {
	case r == utf8.RuneError && len(ch) == 1, r < ' ', r == 0x7f:
		if i := strings.IndexByte("\a\b\f\n\r\t\v", ch[0]); i >= 0 {
			return `\` + "abfnrtv"[i:i+1]
		}
		return fmt.Sprintf(`\%03o`, ch[0])
	case r < utf8.RuneSelf || unicode.IsPrint(r):
		return ""
	case r <= 0xffff:
		return fmt.Sprintf(`\u%04x`, r)
	}
	return fmt.Sprintf(`\U%08x`, r)
}
