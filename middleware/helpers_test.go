package middleware_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/entragate/entragate/claims"
	"github.com/entragate/entragate/middleware"
	"github.com/entragate/entragate/middleware/entratest"
)

// newAuth starts an Authenticator trusting tenant, closed when the test ends.
func newAuth(t testing.TB, tenant *entratest.Tenant, edit ...func(*middleware.Config)) *middleware.Authenticator {
	t.Helper()
	cfg := tenant.Config()
	for _, e := range edit {
		e(&cfg)
	}
	a, err := middleware.New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

// echoClaims is a handler that answers the validated claims as JSON.
var echoClaims = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	c, ok := claims.FromContext(r.Context())
	if !ok {
		http.Error(w, "no claims in context", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(c)
})

// protectedServer serves echoClaims behind RequireAuth on loopback.
func protectedServer(t testing.TB, a *middleware.Authenticator) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(a.RequireAuth(echoClaims))
	t.Cleanup(srv.Close)
	return srv
}

type response struct {
	status    int
	challenge string // WWW-Authenticate
	header    http.Header
	body      map[string]any
}

// get sends GET url with the Authorization header values given.
func get(t testing.TB, url string, authorization ...string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range authorization {
		req.Header.Add("Authorization", v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	r := response{status: resp.StatusCode, challenge: resp.Header.Get("WWW-Authenticate"), header: resp.Header}
	if err := json.NewDecoder(resp.Body).Decode(&r.body); err != nil {
		t.Fatalf("GET %s: body is not JSON: %v", url, err)
	}
	return r
}

var challengeParam = regexp.MustCompile(`(\w+)="([^"]*)"`)

// challengeParams parses a Bearer WWW-Authenticate value.
func challengeParams(t testing.TB, v string) map[string]string {
	t.Helper()
	if v != "Bearer" && !strings.HasPrefix(v, "Bearer ") {
		t.Fatalf("WWW-Authenticate %q is not a Bearer challenge", v)
	}
	out := map[string]string{}
	for _, m := range challengeParam.FindAllStringSubmatch(v, -1) {
		if _, dup := out[m[1]]; dup {
			t.Fatalf("WWW-Authenticate %q repeats %s", v, m[1])
		}
		out[m[1]] = m[2]
	}
	return out
}
