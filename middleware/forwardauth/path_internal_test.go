package forwardauth

import (
	"net/url"
	"path"
	"strings"
	"testing"
)

// Whatever canonicalPath accepts, a server that decodes the path once and
// cleans it (Go's FileServer, most routers) reads as the same path, and
// folding it twice changes nothing more.
func FuzzCanonicalPath(f *testing.F) {
	for _, seed := range []string{"/public/page", "//a//b/", "/public#/../admin", "//healthz/admin", "/a/%2e%2e/b", "/a%3Fb", "/caf%C3%A9", "/api/payment%C5%BF", "/100%25", "/a.", "/%EF%BC%8E"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, escaped string) {
		p := canonicalPath(escaped)
		if p == "" {
			return
		}
		decoded, err := url.PathUnescape(escaped)
		if err != nil {
			t.Fatalf("%q accepted, but it does not decode: %v", escaped, err)
		}
		// A URL parser reads it as a path, with no host (//host/path) and
		// the same path.
		if u, err := url.Parse(escaped); err != nil || u.Host != "" || u.Opaque != "" || u.Path != decoded {
			t.Fatalf("%q: judged as %q, a URL parser reads %+v (%v)", escaped, p, u, err)
		}
		cleaned := path.Clean(decoded)
		if strings.HasSuffix(decoded, "/") && cleaned != "/" {
			cleaned += "/"
		}
		if cleaned != p {
			t.Fatalf("%q: judged as %q, a server reads %q", escaped, p, cleaned)
		}
		if strings.ContainsAny(p, "#;\\") {
			t.Fatalf("%q: judged as %q", escaped, p)
		}
		if once := foldPath(p); foldPath(once) != once {
			t.Fatalf("%q: folding is not idempotent: %q, %q", escaped, once, foldPath(once))
		}
	})
}
