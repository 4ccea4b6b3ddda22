package forwardauth

import (
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

// canonicalPath decodes an escaped path the way an upstream could read it
// and returns it with repeated slashes merged, or "" when two upstreams
// could read it differently:
//   - an encoded slash or backslash, a backslash, a dot segment;
//   - a semicolon (Java servers drop it and what follows from a segment,
//     so /public/..;/admin is /admin there);
//   - a # (a request target has no fragment; Go's and others' servers keep
//     it in the path, where /public#/../admin cleans to /admin);
//   - a percent sign that still encodes something once decoded (a server
//     that decodes twice reads %252e%252e as ..);
//   - a segment ending in a dot or a space (Windows servers drop them, so
//     /api/payments. is /api/payments there);
//   - a character that Unicode compatibility normalization may turn into
//     ASCII (fullwidth forms, ligatures, super- and subscripts, letterlike
//     and mathematical letters), for upstreams that normalize paths;
//   - a control character, invalid percent-encoding or UTF-8.
func canonicalPath(escaped string) string {
	if !strings.HasPrefix(escaped, "/") {
		return ""
	}
	lower := strings.ToLower(escaped)
	if strings.Contains(lower, "%2f") || strings.Contains(lower, "%5c") || strings.ContainsAny(escaped, "\\;") {
		return ""
	}
	p, err := url.PathUnescape(escaped)
	if err != nil || !utf8.ValidString(p) || strings.ContainsAny(p, "\\;#") || stillEncoded(p) {
		return ""
	}
	var b strings.Builder
	for _, seg := range strings.Split(p, "/") {
		switch {
		case seg == "":
			continue
		case seg == "." || seg == ".." || strings.HasSuffix(seg, ".") || strings.HasSuffix(seg, " "):
			return ""
		}
		for _, c := range seg {
			if c < 0x20 || c == 0x7f || compatibilityASCII(c) {
				return ""
			}
		}
		b.WriteByte('/')
		b.WriteString(seg)
	}
	if b.Len() == 0 || strings.HasSuffix(p, "/") && b.String() != "/" {
		b.WriteByte('/')
	}
	return b.String()
}

// stillEncoded reports whether p holds a percent-encoded byte.
func stillEncoded(p string) bool {
	for i := strings.IndexByte(p, '%'); i >= 0 && i+2 < len(p); {
		if ishex(p[i+1]) && ishex(p[i+2]) {
			return true
		}
		next := strings.IndexByte(p[i+1:], '%')
		if next < 0 {
			break
		}
		i += 1 + next
	}
	return false
}

func ishex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// compatibilityASCII reports whether c lies where Unicode keeps
// compatibility forms of ASCII characters, which NFKC normalization
// replaces with them: ª ² ³ ¹ º ¼ ½ ¾, spacing modifier letters,
// phonetic modifier letters, general punctuation (the one- and two-dot
// leaders among it), super- and subscripts, letterlike symbols and number
// forms, enclosed alphanumerics, alphabetic presentation forms (ﬁ),
// vertical and small forms, fullwidth forms, mathematical alphanumerics
// and enclosed alphanumeric supplements. Paths rarely hold any of them.
func compatibilityASCII(c rune) bool {
	switch c {
	case 0xAA, 0xB2, 0xB3, 0xB9, 0xBA, 0xBC, 0xBD, 0xBE:
		return true
	}
	for _, r := range [...][2]rune{
		{0x02B0, 0x02FF}, {0x1D2C, 0x1DBF}, {0x2000, 0x218F}, {0x2460, 0x24FF}, {0xFB00, 0xFB4F},
		{0xFE10, 0xFE1F}, {0xFE30, 0xFE6F}, {0xFF00, 0xFFEF}, {0x1D400, 0x1D7FF}, {0x1F100, 0x1F1FF},
	} {
		if r[0] <= c && c <= r[1] {
			return true
		}
	}
	return false
}

// foldPath is path as protected routes are matched: ASCII letters in
// lower case, and every other character that some server's case-insensitive
// comparison takes for an ASCII letter (ſ for s, K for k, ı and İ for i:
// Unicode simple case folding, or upper- and lower-casing as Java's
// equalsIgnoreCase does) as that letter. A path that any upstream would
// route to a protected route's path is then covered by that route.
func foldPath(path string) string {
	if isASCII(path) {
		return strings.ToLower(path)
	}
	return strings.Map(foldRune, path)
}

func foldRune(c rune) rune {
	for _, r := range []rune{c, unicode.ToLower(c), unicode.ToUpper(c)} {
		if r < utf8.RuneSelf {
			return unicode.ToLower(r)
		}
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			if f < utf8.RuneSelf {
				return unicode.ToLower(f)
			}
		}
	}
	return c
}

// isASCII reports whether s is all ASCII.
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// covers reports whether prefix covers path on a segment boundary.
func covers(prefix, path string) bool {
	if prefix == "/" {
		return true
	}
	rest, ok := strings.CutPrefix(path, prefix)
	return ok && (rest == "" || rest[0] == '/')
}
