package forwardauth_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/entragate/entragate/middleware"
	"github.com/entragate/entragate/middleware/entratest"
	"github.com/entragate/entragate/middleware/forwardauth"
)

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// routes are a typical API behind a gateway: a public health check and
// docs, orders by scope and method, an admin area by app role, and every
// other path for any valid token.
var routes = []forwardauth.Route{
	{Path: "/healthz", Public: true},
	{Path: "/docs", Public: true},
	{Path: "/docs/internal", Rule: middleware.AnyRole("Docs.Internal")},
	{Path: "/api/orders", Methods: []string{"GET", "HEAD"}, Rule: middleware.AnyScope("Orders.Read")},
	{Path: "/api/orders", Rule: middleware.AnyScope("Orders.Write")},
	{Path: "/admin", Rule: middleware.AnyRole("Admin")},
	{Path: "/api", Rule: middleware.Authenticated()},
}

type setup struct {
	tenant *entratest.Tenant
	auth   *middleware.Authenticator
	srv    *httptest.Server
}

func newSetup(t *testing.T, cfg forwardauth.Config, edit ...func(*middleware.Config)) *setup {
	t.Helper()
	s := &setup{tenant: entratest.NewTenant(t)}
	mc := s.tenant.Config()
	mc.Realm = "orders"
	for _, e := range edit {
		e(&mc)
	}
	var err error
	if s.auth, err = middleware.New(t.Context(), mc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.auth.Close() })
	cfg.Authenticator = s.auth
	if cfg.Gateway == 0 {
		cfg.Gateway = forwardauth.Nginx
	}
	if cfg.TrustedNetworks == nil && cfg.SharedSecret == "" {
		cfg.TrustedNetworks = loopback
	}
	if cfg.Routes == nil {
		cfg.Routes = routes
	}
	h, err := forwardauth.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.srv = httptest.NewServer(h)
	t.Cleanup(s.srv.Close)
	return s
}

// check sends the check nginx would send for the original request.
func (s *setup) check(t *testing.T, method, uri string, headers ...string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.srv.URL+"/auth", nil)
	req.Header.Set("X-Original-Method", method)
	req.Header.Set("X-Original-URI", uri)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func bearer(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

// Each route asks what it says, for the original method and path, and
// answers with RequireAuth's statuses and challenges.
func TestRoutesDecide(t *testing.T) {
	s := newSetup(t, forwardauth.Config{})
	reader := s.tenant.AccessToken(entratest.Scopes("Orders.Read"))
	writer := s.tenant.AccessToken(entratest.Scopes("Orders.Write"))
	admin := s.tenant.AppToken(entratest.Roles("Admin"))
	tests := []struct {
		name, method, uri string
		token             string
		status            int
	}{
		{"public path, no token", "GET", "/healthz", "", 200},
		{"public path with a query", "GET", "/healthz?deep=1", "", 200},
		{"public prefix", "GET", "/docs/guide", "", 200},
		{"longer protected path under a public one", "GET", "/docs/internal/plan", "", 401},
		{"read by GET", "GET", "/api/orders/42", reader, 200},
		{"read by HEAD", "HEAD", "/api/orders", reader, 200},
		{"write needs the write scope", "POST", "/api/orders", reader, 403},
		{"write with it", "POST", "/api/orders", writer, 200},
		{"method in lower case", "post", "/api/orders", writer, 200},
		// Protected routes cover what starts with their path, boundary or
		// not (/api/orders.json is /api/orders to Rails), public ones only
		// on a segment boundary.
		{"a protected prefix covers more than its segment", "POST", "/api/orders.json", reader, 403},
		{"so does a longer name", "POST", "/api/ordersx", reader, 403},
		{"a public prefix covers its segment only", "GET", "/healthzx", "", 401},
		{"the admin area with a format", "DELETE", "/admin.json", reader, 403},
		{"a protected route under a public one, with a format", "DELETE", "/docs/internal.json", "", 401},
		{"admin by role", "GET", "/admin/users", admin, 200},
		{"admin without the role", "GET", "/admin/users", reader, 403},
		{"no route: refused once the token is valid", "GET", "/other", reader, 403},
		{"no route, no token", "GET", "/other", "", 401},
		{"bad token", "GET", "/api/x", "eyJub3QiOiJhIHRva2VuIn0.e30.c2ln", 401},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var h []string
			if tc.token != "" {
				h = bearer(tc.token)
			}
			resp := s.check(t, tc.method, tc.uri, h...)
			if resp.StatusCode != tc.status {
				t.Fatalf("%s %s: %d, want %d", tc.method, tc.uri, resp.StatusCode, tc.status)
			}
			if tc.status >= 400 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), `Bearer realm="orders"`) {
				t.Errorf("challenge %q", resp.Header.Get("WWW-Authenticate"))
			}
		})
	}
}

// The answers are RequireAuth's: same status, challenge and body for the
// same token, plus the error in headers for gateways that rewrite bodies.
func TestAnswersAreRequireAuths(t *testing.T) {
	s := newSetup(t, forwardauth.Config{Routes: []forwardauth.Route{{Path: "/", Rule: middleware.AnyScope("Orders.Read")}}})
	direct := httptest.NewServer(s.auth.RequireAuth(middleware.RequireAnyScope("Orders.Read")(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))))
	t.Cleanup(direct.Close)
	for name, h := range map[string][]string{
		"no token":       nil,
		"expired":        bearer(s.tenant.AccessToken(entratest.Expired())),
		"without scope":  bearer(s.tenant.AccessToken(entratest.Scopes("Other"))),
		"two tokens":     {"Authorization", "Bearer a", "Authorization", "Bearer b"},
		"another scheme": {"Authorization", "Basic dXNlcjpwYXNz"},
	} {
		t.Run(name, func(t *testing.T) {
			got := s.check(t, "GET", "/x", h...)
			req, _ := http.NewRequest(http.MethodGet, direct.URL, nil)
			for i := 0; i+1 < len(h); i += 2 {
				req.Header.Add(h[i], h[i+1])
			}
			want, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer want.Body.Close()
			var gotBody, wantBody map[string]string
			_ = json.NewDecoder(got.Body).Decode(&gotBody)
			_ = json.NewDecoder(want.Body).Decode(&wantBody)
			if got.StatusCode != want.StatusCode || got.Header.Get("WWW-Authenticate") != want.Header.Get("WWW-Authenticate") ||
				gotBody["error"] != wantBody["error"] || gotBody["error_description"] != wantBody["error_description"] {
				t.Errorf("forward auth %d %q %v, RequireAuth %d %q %v", got.StatusCode, got.Header.Get("WWW-Authenticate"), gotBody,
					want.StatusCode, want.Header.Get("WWW-Authenticate"), wantBody)
			}
			if got.Header.Get("X-Entra-Error") != gotBody["error"] || got.Header.Get("X-Entra-Error-Description") != gotBody["error_description"] {
				t.Errorf("error headers %q %q, body %v", got.Header.Get("X-Entra-Error"), got.Header.Get("X-Entra-Error-Description"), gotBody)
			}
		})
	}
}

// A 200 names the caller in headers; no token content, nothing unsafe.
func TestIdentityHeaders(t *testing.T) {
	s := newSetup(t, forwardauth.Config{HeaderPrefix: "X-Caller-"})
	u := entratest.User{ObjectID: entratest.NewGUID(), Name: "Zoë O'Brien\r\nX-Injected: 1", Username: "zoe@contoso.example"}
	resp := s.check(t, "GET", "/api/orders", bearer(s.tenant.AccessToken(entratest.ForUser(u), entratest.Scopes("Orders.Read", "Profile"), entratest.Roles("Buyer")))...)
	want := map[string]string{
		"X-Caller-Object-Id": u.ObjectID, "X-Caller-Tenant-Id": s.tenant.ID, "X-Caller-Client-App-Id": s.tenant.ClientApp,
		"X-Caller-Token-Type": "user", "X-Caller-Scopes": "Orders.Read Profile", "X-Caller-Roles": "Buyer",
		"X-Caller-Name": "Zo%C3%AB%20O%27Brien%0D%0AX-Injected:%201", "X-Caller-Username": "zoe@contoso.example",
	}
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	for k, v := range want {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
	if resp.Header.Get("X-Injected") != "" {
		t.Error("a header was injected through the name")
	}
	// Every identity header is there, empty when the caller has no value
	// (or there is no caller, on a public path), so that a gateway copying
	// them over the request replaces whatever a client sent.
	app := s.check(t, "GET", "/api/x", bearer(s.tenant.AppToken(entratest.Roles("Jobs.Run")))...)
	if v, present := app.Header["X-Caller-Scopes"]; app.Header.Get("X-Caller-Token-Type") != "app" || !present || v[0] != "" {
		t.Errorf("app token: %v", app.Header)
	}
	public := s.check(t, "GET", "/healthz")
	for k := range want {
		if v, present := public.Header[k]; !present || v[0] != "" {
			t.Errorf("public path: %s %q, want present and empty", k, v)
		}
	}
}

// Only the trusted gateway is heard: another address, a missing or wrong
// secret, another gateway's headers, a client's own identity headers.
func TestOnlyTheGatewayIsHeard(t *testing.T) {
	reader := func(s *setup) []string { return bearer(s.tenant.AccessToken(entratest.Scopes("Orders.Read"))) }
	t.Run("another network", func(t *testing.T) {
		s := newSetup(t, forwardauth.Config{TrustedNetworks: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
		if r := s.check(t, "GET", "/healthz"); r.StatusCode != 403 {
			t.Errorf("from loopback, trusting 10/8: %d", r.StatusCode)
		}
	})
	t.Run("shared secret", func(t *testing.T) {
		const secret = "a-secret-of-the-gateway-0123456789"
		s := newSetup(t, forwardauth.Config{SharedSecret: secret})
		for name, h := range map[string][]string{
			"none":  nil,
			"wrong": {forwardauth.DefaultSecretHeader, secret + "x"},
			"twice": {forwardauth.DefaultSecretHeader, secret, forwardauth.DefaultSecretHeader, secret},
		} {
			if r := s.check(t, "GET", "/healthz", h...); r.StatusCode != 403 {
				t.Errorf("secret %s: %d", name, r.StatusCode)
			}
		}
		if r := s.check(t, "GET", "/healthz", forwardauth.DefaultSecretHeader, secret); r.StatusCode != 200 {
			t.Errorf("the secret: %d", r.StatusCode)
		}
	})
	s := newSetup(t, forwardauth.Config{})
	t.Run("another gateway's headers", func(t *testing.T) {
		// nginx mode: X-Forwarded-Uri is a client's, not the gateway's.
		r := s.check(t, "GET", "/admin", append(reader(s), "X-Forwarded-Uri", "/healthz", "X-Forwarded-Method", "GET")...)
		if r.StatusCode != 403 {
			t.Errorf("admin path with a forged X-Forwarded-Uri: %d, want 403", r.StatusCode)
		}
	})
	t.Run("original URI twice", func(t *testing.T) {
		if r := s.check(t, "GET", "/admin", "X-Original-URI", "/healthz"); r.StatusCode != 403 || r.Header.Get("X-Entra-Error") != "invalid_request" {
			t.Errorf("two X-Original-URI: %d %v", r.StatusCode, r.Header)
		}
	})
	t.Run("identity headers of the client's own", func(t *testing.T) {
		r := s.check(t, "GET", "/healthz", "X-Entra-Object-Id", entratest.NewGUID())
		if r.StatusCode != 403 || !strings.Contains(r.Header.Get("X-Entra-Error-Description"), "X-Entra-Object-Id") {
			t.Errorf("a forged identity header: %d %v", r.StatusCode, r.Header)
		}
	})
}

// Paths that an upstream could read differently from the route table are
// refused, and case never makes a protected path public.
func TestPathTricks(t *testing.T) {
	s := newSetup(t, forwardauth.Config{Routes: []forwardauth.Route{
		{Path: "/public", Public: true},
		{Path: "/admin", Rule: middleware.AnyRole("Admin")},
		{Path: "/", Rule: middleware.Authenticated()},
	}})
	tests := []struct {
		uri    string
		status int // without a token: 200 public, 401 protected, 403 refused path
	}{
		{"/public/page", 200},
		{"/public/page/", 200},
		// Empty segments: URL parsers read //public/admin as host public.
		{"//public//page", 403},
		{"//public/admin", 403},
		{"/public//page", 403},
		{"/admin", 401},
		{"/ADMIN", 401},
		{"/Public/page", 401}, // public only as written
		{"/adm%69n", 401},     // decoded: /admin
		{"/public/../admin", 403},
		{"/public/%2e%2e/admin", 403},
		{"/public/%2E%2E%2Fadmin", 403},
		{"/public%2fadmin", 403},
		{"/public/..;/admin", 403},
		{"/public;x=1", 403},
		{"/public%3bx", 403},
		{"/public\\..\\admin", 403},
		{"/public/%5c../admin", 403},
		{"/public/./page", 403},
		{"/public/%00", 403},
		{"/public/%zz", 403},
		{"/public/%ff", 403},
		{"relative", 403},
		// A # is refused, not cut: an upstream may keep it in the path
		// and clean /public#/../admin to /admin.
		{"/public#/../admin", 403},
		{"/public#x", 403},
		{"/public%23/../admin", 403},
		// Decoded twice by some servers.
		{"/public/%252e%252e/admin", 403},
		{"/public/%2541", 403},
		{"/public/100%25", 200},      // a percent sign that encodes nothing
		{"/public%3F/../admin", 403}, // a ? some servers split at once decoded
		{"/public/a%7f", 403},
		{"/public/O%E2%80%99Brien", 200},             // ’ stays itself under NFKC
		{"/public/%E2%82%AC10", 200},                 // € too
		{"/public/Hawai%CA%BBi", 200},                // ʻ too
		{"/adm%E3%8F%8C", 403},                       // ㏌ is "in" to NFKC
		{"/public/a%C2%A0", 403},                     // a no-break space is a space
		{"/public/a%CD%BE", 403},                     // U+037E is ; even to NFC
		{"/public/..%E2%88%95..%E2%88%95admin", 403}, // ∕, a slash to Windows' best fit
		// Windows servers drop a segment's trailing dots and spaces.
		{"/admin.", 403},
		{"/admin%20", 403},
		{"/public/a./b", 403},
		// Compatibility forms NFKC turns into ASCII.
		{"/public/%EF%BC%8E%EF%BC%8E/admin", 403}, // fullwidth dots
		{"/%EF%BD%81dmin", 403},                   // fullwidth a
		{"/public/%E2%80%A5/admin", 403},          // two-dot leader
		{"/public/%EF%AC%81le", 403},              // the ﬁ ligature
		{"/public/caf%C3%A9", 200},                // é is a letter of its own
		// What case-insensitive servers take for ASCII letters is matched
		// as those letters: the protected route applies.
		{"/%C4%B1", 401}, // ı: no route but "/", which is protected anyway
		{"/%C7%89", 403}, // ǉ is "lj" to NFKC
	}
	for _, tc := range tests {
		t.Run(tc.uri, func(t *testing.T) {
			if r := s.check(t, "GET", tc.uri); r.StatusCode != tc.status {
				t.Errorf("%s: %d, want %d", tc.uri, r.StatusCode, tc.status)
			}
		})
	}
}

// Traefik and Caddy name the original request in X-Forwarded-*, Envoy in
// the check request itself, behind its path prefix; a client's
// X-Original-URI means nothing to them.
func TestGatewaysReadTheirOwnHeaders(t *testing.T) {
	for _, gw := range []forwardauth.Gateway{forwardauth.Traefik, forwardauth.Caddy} {
		t.Run(gw.String(), func(t *testing.T) {
			s := newSetup(t, forwardauth.Config{Gateway: gw})
			req, _ := http.NewRequest(http.MethodGet, s.srv.URL, nil)
			req.Header.Set("X-Forwarded-Method", "GET")
			req.Header.Set("X-Forwarded-Uri", "/admin/x")
			req.Header.Set("X-Original-URI", "/healthz")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 401 {
				t.Errorf("admin path: %d, want 401", resp.StatusCode)
			}
		})
	}
	s := newSetup(t, forwardauth.Config{Gateway: forwardauth.Envoy, EnvoyPathPrefix: "/ext-authz"})
	for uri, want := range map[string]int{"/ext-authz/healthz": 200, "/ext-authz/admin": 401, "/healthz": 403, "/ext-authzhealthz": 403,
		"/ext-authz/docs%2Fx": 403, "/ext-authz/docs%2Fx|": 403, // judged as sent: Go's EscapedPath would decode the %2F here
		"/ext-authz/healthz?_method=BAD%20METHOD": 403, // the query reaches the check
	} {
		req, _ := http.NewRequest(http.MethodPost, s.srv.URL+"/", nil)
		req.URL.Opaque = uri // the request target as written
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Envoy check %s: %d, want %d", uri, resp.StatusCode, want)
		}
	}
}

// Keys unavailable (Entra down since start-up): 503 with Retry-After, as
// RequireAuth answers.
func TestUnavailable(t *testing.T) {
	tenant := entratest.NewTenant(t)
	tenant.Server().SetFault(entratest.All, entratest.Unavailable)
	cfg := tenant.Config()
	cfg.FetchTimeout = 200 * time.Millisecond
	auth, err := middleware.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { auth.Close() })
	h, err := forwardauth.New(forwardauth.Config{Authenticator: auth, Gateway: forwardauth.Nginx, TrustedNetworks: loopback, Routes: routes})
	if err != nil {
		t.Fatal(err)
	}
	s := &setup{tenant: tenant, auth: auth, srv: httptest.NewServer(h)}
	t.Cleanup(s.srv.Close)
	resp := s.check(t, "GET", "/api/x", bearer(tenant.AccessToken())...)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || resp.Header.Get("X-Entra-Error") != "temporarily_unavailable" {
		t.Errorf("keys unavailable: %d, Retry-After %q, %v", resp.StatusCode, resp.Header.Get("Retry-After"), resp.Header)
	}
	if r := s.check(t, "GET", "/healthz"); r.StatusCode != 200 {
		t.Errorf("a public path while Entra is down: %d", r.StatusCode)
	}
}

func TestConfigIsChecked(t *testing.T) {
	tenant := entratest.NewTenant(t)
	auth, err := middleware.New(t.Context(), tenant.Config())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { auth.Close() })
	base := forwardauth.Config{Authenticator: auth, Gateway: forwardauth.Nginx, TrustedNetworks: loopback}
	for name, edit := range map[string]func(*forwardauth.Config){
		"no trust":              func(c *forwardauth.Config) { c.TrustedNetworks = nil },
		"short secret":          func(c *forwardauth.Config) { c.SharedSecret = "short" },
		"no gateway":            func(c *forwardauth.Config) { c.Gateway = 0 },
		"Envoy prefix on nginx": func(c *forwardauth.Config) { c.EnvoyPathPrefix = "/x" },
		"relative route":        func(c *forwardauth.Config) { c.Routes = []forwardauth.Route{{Path: "api", Public: true}} },
		"route with a dot":      func(c *forwardauth.Config) { c.Routes = []forwardauth.Route{{Path: "/a/../b", Public: true}} },
		"trailing slash":        func(c *forwardauth.Config) { c.Routes = []forwardauth.Route{{Path: "/a/", Public: true}} },
		"public with a rule": func(c *forwardauth.Config) {
			c.Routes = []forwardauth.Route{{Path: "/a", Public: true, Rule: middleware.Authenticated()}}
		},
		"lower-case method": func(c *forwardauth.Config) {
			c.Routes = []forwardauth.Route{{Path: "/a", Methods: []string{"get"}, Public: true}}
		},
		"duplicate": func(c *forwardauth.Config) {
			c.Routes = []forwardauth.Route{{Path: "/a", Public: true}, {Path: "/A", Rule: middleware.Authenticated()}}
		},
		"overlapping methods": func(c *forwardauth.Config) {
			c.Routes = []forwardauth.Route{{Path: "/reports", Methods: []string{"GET"}, Rule: middleware.AnyRole("Admin")},
				{Path: "/reports", Methods: []string{"GET", "HEAD"}, Public: true}}
		},
		"secret header under the prefix": func(c *forwardauth.Config) {
			c.SecretHeader = "X-Entra-Secret"
			c.SharedSecret = "0123456789abcdef0123"
		},
		"Envoy prefix without a slash": func(c *forwardauth.Config) { c.Gateway = forwardauth.Envoy; c.EnvoyPathPrefix = "authz" },
		"bad prefix":                   func(c *forwardauth.Config) { c.HeaderPrefix = "X Bad" },
	} {
		cfg := base
		edit(&cfg)
		if _, err := forwardauth.New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func newAuthenticator(tb testing.TB, cfg middleware.Config) (*middleware.Authenticator, error) {
	a, err := middleware.New(tb.Context(), cfg)
	if err == nil {
		tb.Cleanup(func() { a.Close() })
	}
	return a, err
}

// A path that a case-insensitive upstream routes to a protected path is
// judged by that path's route: ſ is s to Unicode's simple case folding, K
// (the Kelvin sign) is k, ı and İ are i to Java's equalsIgnoreCase.
func TestCaseFoldingReachesTheProtectedRoute(t *testing.T) {
	s := newSetup(t, forwardauth.Config{Routes: []forwardauth.Route{
		{Path: "/api/payments", Rule: middleware.AnyScope("Payments.Write")},
		{Path: "/api/kiosk", Rule: middleware.AnyScope("Kiosk.Use")},
		{Path: "/api/billing", Rule: middleware.AnyScope("Billing.Read")},
		{Path: "/api/access", Rule: middleware.AnyScope("Access.Admin")},
		{Path: "/api", Rule: middleware.Authenticated()},
	}})
	reader := bearer(s.tenant.AccessToken(entratest.Scopes("Orders.Read")))
	for _, uri := range []string{
		"/api/payments", "/api/PAYMENTS", "/api/payment%C5%BF", "/api/%E2%84%AAiosk", "/api/b%C4%B1lling", "/api/B%C4%B0LLING",
		"/api/acce%C3%9F", "/api/ACCE%E1%BA%9E",
	} {
		if r := s.check(t, "POST", uri, reader...); r.StatusCode != 403 {
			t.Errorf("%s with Orders.Read only: %d, want 403 (the protected route)", uri, r.StatusCode)
		}
	}
	if r := s.check(t, "POST", "/api/other", reader...); r.StatusCode != 200 {
		t.Errorf("/api/other: %d, want 200", r.StatusCode)
	}
	if _, err := forwardauth.New(forwardauth.Config{Authenticator: s.auth, Gateway: forwardauth.Nginx, TrustedNetworks: loopback,
		Routes: []forwardauth.Route{{Path: "/caf\u00e9", Public: true}}}); err == nil {
		t.Error("a route path that is not ASCII was accepted")
	}
}

// Identity headers a client sent, however spelled, and headers some
// servers read as the request's path are refused.
func TestForeignHeadersAreRefused(t *testing.T) {
	s := newSetup(t, forwardauth.Config{})
	reader := bearer(s.tenant.AccessToken(entratest.Scopes("Orders.Read")))
	for _, h := range [][2]string{
		{"X-Entra-Roles", "Admin"}, {"x-entra-object-id", "forged"}, {"X_Entra_Roles", "Admin"}, {"X-Entra_Object_Id", "forged"},
		{"x_entra_name", "forged"}, {"X-Original-URL", "/admin"}, {"X_Rewrite_URL", "/admin"},
	} {
		for _, uri := range []string{"/api/orders/1", "/healthz"} {
			if r := s.check(t, "GET", uri, append([]string{h[0], h[1]}, reader...)...); r.StatusCode != 403 {
				t.Errorf("%s: %s on %s: %d, want 403", uri, h[0], uri, r.StatusCode)
			}
		}
	}
	if r := s.check(t, "GET", "/api/orders/1", append([]string{"X-Entragate-Other", "x"}, reader...)...); r.StatusCode != 200 {
		t.Errorf("an unrelated header: %d, want 200", r.StatusCode)
	}
}

// A method override header makes the request pass the routes of every
// method it may be served as.
func TestMethodOverridesArePassedToo(t *testing.T) {
	s := newSetup(t, forwardauth.Config{})
	reader := bearer(s.tenant.AccessToken(entratest.Scopes("Orders.Read")))
	writer := bearer(s.tenant.AccessToken(entratest.Scopes("Orders.Read", "Orders.Write")))
	tests := []struct {
		name    string
		method  string
		uri     string
		headers []string
		status  int
	}{
		{"GET as DELETE by a reader", "GET", "/api/orders/1", append([]string{"X-HTTP-Method-Override", "DELETE"}, reader...), 403},
		{"POST as GET by a reader", "POST", "/api/orders/1", append([]string{"X-HTTP-Method-Override", "GET"}, reader...), 403},
		{"GET as DELETE by a writer", "GET", "/api/orders/1", append([]string{"X-HTTP-Method-Override", "delete"}, writer...), 200},
		{"X-HTTP-Method", "GET", "/api/orders/1", append([]string{"X-HTTP-Method", "PUT"}, reader...), 403},
		{"X-Method-Override", "GET", "/api/orders/1", append([]string{"X-Method-Override", "PUT"}, reader...), 403},
		{"underscored", "GET", "/api/orders/1", append([]string{"X_HTTP_Method_Override", "PUT"}, reader...), 403},
		{"public path as a protected method", "GET", "/healthz", []string{"X-HTTP-Method-Override", "DELETE"}, 200},
		{"not a method", "GET", "/api/orders/1", append([]string{"X-HTTP-Method-Override", "DE LETE"}, writer...), 403},
		{"an empty override", "GET", "/api/orders/1", append([]string{"X-HTTP-Method-Override", ""}, reader...), 200},
		{"_method in the query", "GET", "/api/orders/1?_method=DELETE", reader, 403},
		{"_method in the query, allowed", "GET", "/api/orders/1?_method=HEAD", reader, 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if r := s.check(t, tc.method, tc.uri, tc.headers...); r.StatusCode != tc.status {
				t.Errorf("%d, want %d", r.StatusCode, tc.status)
			}
		})
	}
}

// Methods are compared in upper case, whatever case the gateway or an
// override sends (ASP.NET compares them case-insensitively): a lower-case
// delete is DELETE's route, not the one for every other method.
func TestMethodsInAnyCase(t *testing.T) {
	s := newSetup(t, forwardauth.Config{Routes: []forwardauth.Route{
		{Path: "/records", Methods: []string{"DELETE"}, Rule: middleware.AnyRole("Records.Admin")},
		{Path: "/records", Rule: middleware.Authenticated()},
	}})
	user := bearer(s.tenant.AccessToken(entratest.Scopes("Records.Read")))
	for name, tc := range map[string]struct {
		method  string
		headers []string
	}{
		"delete":                    {"delete", user},
		"an override in lower case": {"POST", append([]string{"X-HTTP-Method-Override", "delete"}, user...)},
	} {
		if r := s.check(t, tc.method, "/records/1", tc.headers...); r.StatusCode != 403 {
			t.Errorf("%s: %d, want 403 (DELETE's route)", name, r.StatusCode)
		}
	}
	r := s.check(t, "GET", "/records/1", user...)
	if r.StatusCode != 200 || r.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("GET: %d, Cache-Control %q", r.StatusCode, r.Header.Get("Cache-Control"))
	}
	// A role a header could not carry unambiguously is left out.
	odd := s.check(t, "GET", "/records/1", bearer(s.tenant.AccessToken(entratest.Scopes("Records.Read"), entratest.Roles("Reader", "a,b", "c d")))...)
	if got := odd.Header.Get("X-Entra-Roles"); got != "Reader" {
		t.Errorf("roles header %q, want only Reader", got)
	}
}

// A protected route whose path a request merely starts with
// (/api/me for /api/metrics) adds its rule; it never replaces the
// stricter rule of the route the request is on (/api, here), which an
// upstream routing on segments applies.
func TestLongerPrefixesAddTheirRules(t *testing.T) {
	s := newSetup(t, forwardauth.Config{Routes: []forwardauth.Route{
		{Path: "/api/me", Rule: middleware.Authenticated()},
		{Path: "/api/user", Rule: middleware.Authenticated()},
		{Path: "/api", Rule: middleware.AnyRole("Admin")},
		{Path: "/catalog", Methods: []string{"GET", "HEAD"}, Public: true},
		{Path: "/catalog", Rule: middleware.AnyRole("Catalog.Admin")},
	}})
	user := bearer(s.tenant.AccessToken(entratest.Scopes("Profile")))
	admin := bearer(s.tenant.AccessToken(entratest.Scopes("Profile"), entratest.Roles("Admin")))
	for _, tc := range []struct {
		uri     string
		headers []string
		want    int
	}{
		{"/api/me", user, 200}, {"/api/me/photo", user, 200}, {"/api/user", user, 200},
		{"/api/metrics", user, 403}, {"/api/users/42/roles", user, 403}, {"/API/METRICS", user, 403}, {"/api/messages/1", user, 403},
		{"/api/metrics", admin, 200},
	} {
		if r := s.check(t, "GET", tc.uri, tc.headers...); r.StatusCode != tc.want {
			t.Errorf("GET %s: %d, want %d", tc.uri, r.StatusCode, tc.want)
		}
	}
	// Methods are case-sensitive to Go's ServeMux ("get" is not GET's
	// route there) and not to ASP.NET: a lower-case method passes both.
	if r := s.check(t, "get", "/catalog/7"); r.StatusCode != 401 {
		t.Errorf("get /catalog/7 without a token: %d, want 401 (the route for every other method)", r.StatusCode)
	}
	if r := s.check(t, "GET", "/catalog/7"); r.StatusCode != 200 {
		t.Errorf("GET /catalog/7: %d, want 200", r.StatusCode)
	}
}

// _method is found however the query spells it for the frameworks that
// read it: percent-encoded (Node's querystring decodes it), or as PHP
// names it (leading spaces dropped, cut at a NUL, ".", " " and "[" for
// "_").
func TestMethodInTheQueryAnySpelling(t *testing.T) {
	s := newSetup(t, forwardauth.Config{})
	reader := bearer(s.tenant.AccessToken(entratest.Scopes("Orders.Read")))
	for _, q := range []string{"_method=DELETE", "%5Fmethod=DELETE", "%5fmethod=DELETE", "_%6Dethod=DELETE", "a=1&%5Fmethod=DELETE",
		".method=DELETE", "[method=DELETE", "+_method=DELETE", "%20_method=DELETE", "%20%20_method=DELETE", "_method%00x=DELETE",
		"_method%00%zz=DELETE", "%5Fmethod%00%=DELETE", "_method%00%zz=DELETE&a=1"} { // bad escapes kept, good ones decoded, as PHP does
		if r := s.check(t, "GET", "/api/orders/1?"+q, reader...); r.StatusCode != 403 {
			t.Errorf("?%s: %d, want 403 (DELETE's route)", q, r.StatusCode)
		}
	}
	if r := s.check(t, "GET", "/api/orders/1?a=1;_method=DELETE", reader...); r.StatusCode != 403 {
		t.Errorf("_method after a semicolon (a separator to some servers): %d, want 403", r.StatusCode)
	}
	for _, q := range []string{"a=1;b=2", "q=100%", "q=%zz&x=1"} {
		if r := s.check(t, "GET", "/healthz?"+q); r.StatusCode != 200 {
			t.Errorf("a public path with ?%s: %d, want 200 (a query Go would not parse is read leniently)", q, r.StatusCode)
		}
	}
	if r := s.check(t, "GET", "/api/orders/1?method=DELETE&x_method=1", reader...); r.StatusCode != 200 {
		t.Errorf("other names: %d, want 200", r.StatusCode)
	}
}

// A path that merely starts with a longer route's path takes that path's
// route for its method, and only that one (GET /api/orders.json is GET
// /api/orders, not also the route for every other method), also where no
// shorter route covers it.
func TestPrefixesTakeTheMethodsRoute(t *testing.T) {
	s := newSetup(t, forwardauth.Config{}) // routes: /api/orders GET,HEAD Orders.Read; /api/orders Orders.Write; /api any token
	reader := bearer(s.tenant.AccessToken(entratest.Scopes("Orders.Read")))
	for _, uri := range []string{"/api/orders.json", "/api/ordersx"} {
		if r := s.check(t, "GET", uri, reader...); r.StatusCode != 200 {
			t.Errorf("GET %s with Orders.Read: %d, want 200 (GET's route)", uri, r.StatusCode)
		}
		if r := s.check(t, "POST", uri, reader...); r.StatusCode != 403 {
			t.Errorf("POST %s with Orders.Read: %d, want 403", uri, r.StatusCode)
		}
	}
	lone := newSetup(t, forwardauth.Config{Routes: []forwardauth.Route{
		{Path: "/healthz", Public: true},
		{Path: "/api/orders", Rule: middleware.AnyScope("Orders.Write")},
		{Path: "/catalog", Methods: []string{"GET"}, Public: true},
		{Path: "/catalog", Rule: middleware.AnyRole("Catalog.Admin")},
	}})
	writer := bearer(lone.tenant.AccessToken(entratest.Scopes("Orders.Write")))
	if r := lone.check(t, "POST", "/api/orders.json", writer...); r.StatusCode != 200 {
		t.Errorf("POST /api/orders.json, no shorter route: %d, want 200", r.StatusCode)
	}
	if r := lone.check(t, "POST", "/api/orders.json"); r.StatusCode != 401 {
		t.Errorf("POST /api/orders.json without a token: %d, want 401", r.StatusCode)
	}
	if r := lone.check(t, "POST", "/catalog.json", writer...); r.StatusCode != 403 {
		t.Errorf("POST /catalog.json: %d, want 403 (the catalog's route for other methods)", r.StatusCode)
	}
	if r := lone.check(t, "GET", "/other"); r.StatusCode != 401 {
		t.Errorf("a path no route covers, no token: %d, want 401", r.StatusCode)
	}
}

// Behind Envoy, the handler must see the check request as Envoy sent it:
// one whose path a middleware rewrote (http.StripPrefix) is refused.
func TestEnvoyRewrittenChecksAreRefused(t *testing.T) {
	tenant := entratest.NewTenant(t)
	auth, err := middleware.New(t.Context(), tenant.Config())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { auth.Close() })
	h, err := forwardauth.New(forwardauth.Config{Authenticator: auth, Gateway: forwardauth.Envoy, TrustedNetworks: loopback, Routes: []forwardauth.Route{
		{Path: "/admin", Rule: middleware.AnyRole("Admin")}, {Path: "/", Rule: middleware.Authenticated()},
	}})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/ext-authz/", http.StripPrefix("/ext-authz", h))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/ext-authz/admin/users", nil)
	req.Header.Set("Authorization", "Bearer "+tenant.AccessToken(entratest.Scopes("Profile")))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Errorf("a rewritten check: %d, want 403", resp.StatusCode)
	}
}

// HEAD is judged as GET too: most servers answer it with the GET handler.
func TestHeadPassesGetsRoute(t *testing.T) {
	s := newSetup(t, forwardauth.Config{Routes: []forwardauth.Route{
		{Path: "/api/orders", Methods: []string{"GET"}, Rule: middleware.AnyScope("Orders.Read")},
		{Path: "/api", Rule: middleware.Authenticated()},
	}})
	profile := bearer(s.tenant.AccessToken(entratest.Scopes("Profile")))
	reader := bearer(s.tenant.AccessToken(entratest.Scopes("Orders.Read")))
	if r := s.check(t, "HEAD", "/api/orders/1", profile...); r.StatusCode != 403 {
		t.Errorf("HEAD without Orders.Read: %d, want 403 (GET's route)", r.StatusCode)
	}
	if r := s.check(t, "POST", "/api/orders/1", append([]string{"X-HTTP-Method-Override", "HEAD"}, profile...)...); r.StatusCode != 403 {
		t.Errorf("an override to HEAD without Orders.Read: %d, want 403", r.StatusCode)
	}
	if r := s.check(t, "HEAD", "/api/orders/1", reader...); r.StatusCode != 200 {
		t.Errorf("HEAD with Orders.Read: %d, want 200", r.StatusCode)
	}
	// A route for HEAD alone is HEAD's own handler: GET's route does not
	// apply to it (a load balancer's HEAD health check).
	ping := newSetup(t, forwardauth.Config{Routes: []forwardauth.Route{
		{Path: "/ping", Methods: []string{"HEAD"}, Public: true},
		{Path: "/", Rule: middleware.Authenticated()},
	}})
	if r := ping.check(t, "HEAD", "/ping"); r.StatusCode != 200 {
		t.Errorf("HEAD /ping, public for HEAD alone: %d, want 200", r.StatusCode)
	}
	if r := ping.check(t, "GET", "/ping"); r.StatusCode != 401 {
		t.Errorf("GET /ping: %d, want 401", r.StatusCode)
	}
	// HEAD's own route is HEAD's handler only where it is at least as
	// specific as GET's: a HEAD check on / or /api leaves GET /api/orders's
	// rule on HEAD /api/orders/1.
	wide := newSetup(t, forwardauth.Config{Routes: []forwardauth.Route{
		{Path: "/", Methods: []string{"HEAD"}, Public: true},
		{Path: "/api", Methods: []string{"HEAD"}, Rule: middleware.Authenticated()},
		{Path: "/api/orders", Methods: []string{"GET"}, Rule: middleware.AnyScope("Orders.Read")},
		{Path: "/", Rule: middleware.Authenticated()},
	}})
	plain := bearer(wide.tenant.AccessToken(entratest.Scopes("Profile")))
	for _, uri := range []string{"/api/orders/1", "/api/orders.json"} {
		if r := wide.check(t, "HEAD", uri); r.StatusCode != 401 {
			t.Errorf("HEAD %s without a token: %d, want 401 (GET's route)", uri, r.StatusCode)
		}
		if r := wide.check(t, "HEAD", uri, plain...); r.StatusCode != 403 {
			t.Errorf("HEAD %s without Orders.Read: %d, want 403 (GET's route)", uri, r.StatusCode)
		}
	}
	if r := wide.check(t, "HEAD", "/healthz"); r.StatusCode != 200 {
		t.Errorf("HEAD /healthz: %d, want 200 (HEAD's own route, no GET route more specific)", r.StatusCode)
	}
	// A shorter GET route the path starts with (/health for /healthz) is
	// not HEAD's handler; a GET route on the same path in another case is
	// as specific, and its rule stays.
	probe := newSetup(t, forwardauth.Config{Routes: []forwardauth.Route{
		{Path: "/healthz", Methods: []string{"HEAD"}, Public: true},
		{Path: "/health", Methods: []string{"GET"}, Rule: middleware.Authenticated()},
		{Path: "/api/Orders", Methods: []string{"HEAD"}, Public: true},
		{Path: "/api/orders", Methods: []string{"GET"}, Rule: middleware.AnyScope("Orders.Read")},
		{Path: "/", Rule: middleware.Authenticated()},
	}})
	if r := probe.check(t, "HEAD", "/healthz"); r.StatusCode != 200 {
		t.Errorf("HEAD /healthz beside GET /health: %d, want 200", r.StatusCode)
	}
	if r := probe.check(t, "HEAD", "/api/Orders/1"); r.StatusCode != 401 {
		t.Errorf("HEAD /api/Orders/1 beside GET /api/orders: %d, want 401 (GET's rule)", r.StatusCode)
	}
}

// A public route claims a longer path only as written: /Docs (public)
// says nothing of /docs.json, which the protected /docs covers.
func TestPublicRoutesClaimPrefixesAsWritten(t *testing.T) {
	s := newSetup(t, forwardauth.Config{Routes: []forwardauth.Route{
		{Path: "/Docs", Methods: []string{"GET"}, Public: true},
		{Path: "/docs", Rule: middleware.AnyRole("Docs.Internal")},
		{Path: "/", Rule: middleware.Authenticated()},
	}})
	profile := bearer(s.tenant.AccessToken(entratest.Scopes("Profile")))
	for _, uri := range []string{"/docs", "/docs.json", "/docsx"} {
		if r := s.check(t, "GET", uri, profile...); r.StatusCode != 403 {
			t.Errorf("GET %s without Docs.Internal: %d, want 403", uri, r.StatusCode)
		}
	}
	if r := s.check(t, "GET", "/Docs/guide"); r.StatusCode != 200 {
		t.Errorf("GET /Docs/guide: %d, want 200 (public as written)", r.StatusCode)
	}
}
