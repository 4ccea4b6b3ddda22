package forwardauth

import (
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// canonicalPath decodes an escaped path the way an upstream could read it,
// or returns "" when two upstreams could read it differently:
//   - an encoded slash or backslash, a backslash, a dot segment;
//   - an empty segment (//): URL parsers read a leading //healthz/admin
//     as host healthz and path /admin, and routers differ on the others;
//   - a semicolon (Java servers drop it and what follows from a segment,
//     so /public/..;/admin is /admin there);
//   - a # or an encoded ? (a request target has no fragment, and servers
//     that decode before they split the query, or keep a # in the path,
//     cut or clean /public#/../admin to /admin);
//   - a percent sign that still encodes something once decoded (a server
//     that decodes twice reads %252e%252e as ..);
//   - a segment ending in a dot or a space (Windows servers drop them, so
//     /api/payments. is /api/payments there);
//   - a character that Unicode compatibility normalization (NFKC) turns
//     into ASCII, for upstreams that normalize paths (fullwidth letters,
//     ligatures, ㏌, a no-break space), or that Windows' best-fit code
//     pages turn into a slash or backslash (∕, ¥);
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
	if err != nil || !utf8.ValidString(p) || strings.ContainsAny(p, "\\;#?") || stillEncoded(p) {
		return ""
	}
	segments := strings.Split(p[1:], "/")
	for i, seg := range segments {
		switch {
		case seg == "" && i < len(segments)-1:
			return "" // a // (a trailing / is an empty last segment)
		case seg == "." || seg == ".." || strings.HasSuffix(seg, ".") || strings.HasSuffix(seg, " "):
			return ""
		}
		for _, c := range seg {
			if c < 0x20 || c == 0x7f || c >= utf8.RuneSelf && becomesASCII(c) {
				return ""
			}
		}
	}
	return p
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

// becomesASCII reports whether an upstream may read the non-ASCII c as
// ASCII: Unicode compatibility normalization (NFKC) turns it into
// something with ASCII in it, or it is a slash or backslash of Windows'
// best-fit mappings (code pages 932, 949 and others).
func becomesASCII(c rune) bool {
	switch c {
	case 0x2044, 0x2215, 0x2216, 0x29F5, 0x29F8, 0x29F9, 0x00A5, 0x20A9: // ⁄ ∕ ∖ ⧵ ⧸ ⧹ ¥ ₩
		return true
	}
	var buf [utf8.UTFMax]byte
	n := utf8.EncodeRune(buf[:], c)
	if norm.NFKC.IsNormal(buf[:n]) {
		return false
	}
	for _, b := range norm.NFKC.Bytes(buf[:n]) {
		if b < utf8.RuneSelf {
			return true
		}
	}
	return false
}

// foldPath is path as protected routes are matched: ASCII letters in
// lower case, and every other character that some server's
// case-insensitive comparison takes for ASCII letters as those letters:
// ſ for s, K (the Kelvin sign) for k, ı and İ for i (upper- and
// lower-casing, as Java's equalsIgnoreCase does), ß and ẞ for ss (full
// case mapping, as upper() in Python, Java and JavaScript does). A path
// that any upstream would route to a protected route's path is then
// covered by that route.
func foldPath(path string) string {
	if isASCII(path) {
		return strings.ToLower(path)
	}
	var b strings.Builder
	for _, c := range path {
		switch c {
		case 'ß', 'ẞ':
			b.WriteString("ss")
		default:
			b.WriteRune(foldRune(c))
		}
	}
	return b.String()
}

func foldRune(c rune) rune {
	for _, r := range []rune{c, unicode.ToLower(c), unicode.ToUpper(c)} {
		if r < utf8.RuneSelf {
			return unicode.ToLower(r)
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

// covers reports whether prefix covers path on a segment boundary: how a
// public route matches.
func covers(prefix, path string) bool {
	if prefix == "/" {
		return true
	}
	rest, ok := strings.CutPrefix(path, prefix)
	return ok && (rest == "" || rest[0] == '/')
}

// coversProtected is how a protected route matches: every path that
// starts with its path, on a segment boundary or not, since upstreams
// match prefixes as strings (nginx's location /x, Java's HttpServer
// contexts) and strip formats (/api/payments.json is /api/payments to
// Rails and Spring): more paths are protected, never fewer.
func coversProtected(prefix, path string) bool {
	return strings.HasPrefix(path, prefix)
}
