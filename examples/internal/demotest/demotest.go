// Package demotest holds what the example programs' tests share: their
// routes served on loopback behind an authenticator trusting a fake tenant.
package demotest

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"testing"

	"github.com/entragate/entragate/middleware"
	"github.com/entragate/entragate/middleware/entratest"
)

// Serve starts routes on loopback behind an authenticator that trusts
// tenant; both are closed when the test ends.
func Serve(tb testing.TB, tenant *entratest.Tenant, routes func(*middleware.Authenticator) http.Handler, edit ...func(*middleware.Config)) *httptest.Server {
	tb.Helper()
	cfg := tenant.Config()
	for _, e := range edit {
		e(&cfg)
	}
	auth, err := middleware.New(tb.Context(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { auth.Close() })
	srv := httptest.NewServer(routes(auth))
	tb.Cleanup(srv.Close)
	return srv
}

// Get sends GET url, with the bearer token if not empty, and returns the
// status and body.
func Get(tb testing.TB, url, token string) (int, []byte) {
	tb.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		tb.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return resp.StatusCode, body
}

// Program is the path of a real program a test drives (nginx, Chromium):
// the variable env when set, else the first of names on PATH. Without one
// the test skips, saying how to get one, unless ENTRAGATE_E2E_REQUIRED is
// set (as in CI), which makes that a failure.
func Program(tb testing.TB, env string, names ...string) string {
	tb.Helper()
	if p := os.Getenv(env); p != "" {
		return p
	}
	for _, name := range names {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := fmt.Sprintf("%s not found (install Debian's %s package, or set %s)", names[0], names[0], env)
	if os.Getenv("ENTRAGATE_E2E_REQUIRED") != "" {
		tb.Fatal(msg + ", and ENTRAGATE_E2E_REQUIRED is set")
	}
	tb.Skip(msg)
	return ""
}

// Browser is the path of a Chromium for a test that drives a real
// browser (CHROMIUM, or the usual names), as Program finds it.
func Browser(tb testing.TB) string {
	tb.Helper()
	return Program(tb, "CHROMIUM", "chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
}
