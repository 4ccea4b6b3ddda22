package middleware_test

import (
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/entragate/entragate/claims"
	"github.com/entragate/entragate/middleware"
	"github.com/entragate/entragate/middleware/entratest"
)

func TestRouteGuardsWithChi(t *testing.T) {
	tenant := entratest.NewTenant(t)
	a := newAuth(t, tenant)
	r := chi.NewRouter()
	r.Get("/public", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(`{}`)) })
	r.Group(func(r chi.Router) {
		r.Use(a.RequireAuth)
		r.With(middleware.RequireAnyScope("Files.Read", "Files.ReadWrite")).Get("/any-scope", echoClaims)
		r.With(middleware.RequireAllScopes("Files.Read", "Mail.Send")).Get("/all-scopes", echoClaims)
		r.With(middleware.RequireAnyRole("Files.Read.All")).Get("/role", echoClaims)
		r.With(middleware.RequireScopeOrRole([]string{"Files.Read"}, []string{"Files.Read.All"})).Get("/scope-or-role", echoClaims)
	})
	// A guard mounted without RequireAuth must fail closed.
	r.With(middleware.RequireAnyScope("Files.Read")).Get("/misconfigured", echoClaims)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)

	user := func(scopes ...string) string { return tenant.AccessToken(entratest.Scopes(scopes...)) }
	app := func(roles ...string) string { return tenant.AppToken(entratest.Roles(roles...)) }
	tests := []struct {
		name      string
		path      string
		token     string
		status    int
		wantScope string // scope attribute of a 403 challenge
	}{
		{"public route needs no token", "/public", "", 200, ""},
		{"any scope: one of two", "/any-scope", user("Files.ReadWrite"), 200, ""},
		{"any scope: none", "/any-scope", user("Mail.Send"), 403, "Files.Read Files.ReadWrite"},
		{"scope match is case-sensitive", "/any-scope", user("files.read"), 403, "Files.Read Files.ReadWrite"},
		{"any scope: app-only token refused", "/any-scope", app("Files.Read"), 403, "Files.Read Files.ReadWrite"},
		{"all scopes: both", "/all-scopes", user("Mail.Send", "Files.Read"), 200, ""},
		{"all scopes: one missing", "/all-scopes", user("Files.Read"), 403, "Files.Read Mail.Send"},
		{"role: daemon with the role", "/role", app("Files.Read.All"), 200, ""},
		{"role: daemon without it", "/role", app("Other.All"), 403, ""},
		{"role match is case-sensitive", "/role", app("files.read.all"), 403, ""},
		{"role: user with the scope of the same name", "/role", user("Files.Read.All"), 403, ""},
		{"scope or role: user with the scope", "/scope-or-role", user("Files.Read"), 200, ""},
		{"scope or role: daemon with the role", "/scope-or-role", app("Files.Read.All"), 200, ""},
		{"scope or role: neither", "/scope-or-role", user("Mail.Send"), 403, "Files.Read"},
		{"guard runs after authentication", "/any-scope", tenant.AccessToken(entratest.Expired(), entratest.Scopes("Files.Read")), 401, ""},
		{"guard without RequireAuth fails closed", "/misconfigured", user("Files.Read"), 401, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var auth []string
			if tc.token != "" {
				auth = []string{"Bearer " + tc.token}
			}
			r := get(t, srv.URL+tc.path, auth...)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %v", r.status, tc.status, r.body)
			}
			if tc.status != 403 {
				return
			}
			p := challengeParams(t, r.challenge)
			if p["error"] != "insufficient_scope" || p["scope"] != tc.wantScope || p["error_description"] == "" {
				t.Errorf("challenge %q, want insufficient_scope with scope %q", r.challenge, tc.wantScope)
			}
			if r.body["error"] != "insufficient_scope" {
				t.Errorf("body %v", r.body)
			}
		})
	}
}

func TestGuardsWithServeMux(t *testing.T) {
	tenant := entratest.NewTenant(t)
	a := newAuth(t, tenant)
	mux := http.NewServeMux()
	mux.Handle("GET /data", a.RequireAuth(middleware.RequireAnyScope("Data.Read")(echoClaims)))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	if r := get(t, srv.URL+"/data", "Bearer "+tenant.AccessToken(entratest.Scopes("Data.Read"))); r.status != 200 {
		t.Errorf("status %d, want 200", r.status)
	}
	if r := get(t, srv.URL+"/data", "Bearer "+tenant.AccessToken()); r.status != 403 {
		t.Errorf("status %d, want 403", r.status)
	}
}

func TestConfigScopesAndRolesApplyToValidate(t *testing.T) {
	tenant := entratest.NewTenant(t)
	a := newAuth(t, tenant, func(c *middleware.Config) {
		c.Scopes = []string{"SecureData.Read"}
		c.Roles = []string{"SecureData.Read.All"}
	})
	tests := []struct {
		name  string
		token string
		want  error
	}{
		{"user with the scope", tenant.AccessToken(entratest.Scopes("SecureData.Read")), nil},
		{"daemon with the role", tenant.AppToken(entratest.Roles("SecureData.Read.All")), nil},
		{"user without the scope", tenant.AccessToken(), middleware.ErrInsufficientScope},
		{"daemon with another role", tenant.AppToken(entratest.Roles("Other")), middleware.ErrInsufficientScope},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := a.Validate(t.Context(), tc.token)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (c != nil) {
				t.Fatalf("Validate = %v, %v; want error %v", c, err, tc.want)
			}
			var e *middleware.Error
			if tc.want != nil && (!errors.As(err, &e) || e.Status != http.StatusForbidden || e.Code != "insufficient_scope") {
				t.Errorf("error %#v, want a 403 insufficient_scope *Error", err)
			}
		})
	}
}

func TestACLModeAcceptsTokensWithoutScopesOrRoles(t *testing.T) {
	tenant := entratest.NewTenant(t)
	strict := newAuth(t, tenant)
	acl := newAuth(t, tenant, func(c *middleware.Config) { c.AllowTokensWithoutScopesOrRoles = true })
	tok := tenant.AppToken()
	if _, err := strict.Validate(t.Context(), tok); !errors.Is(err, middleware.ErrNotAccessToken) {
		t.Errorf("default: %v, want ErrNotAccessToken", err)
	}
	c, err := acl.Validate(t.Context(), tok)
	if err != nil || !c.IsAppOnly() || c.ObjectID != tenant.DaemonObjectID {
		t.Errorf("ACL mode: %v, %v; want the daemon's claims", c, err)
	}
}

func TestGuardsPanicWithoutNames(t *testing.T) {
	tests := []struct {
		name    string
		build   func()
		mention string
	}{
		{"RequireAnyScope", func() { middleware.RequireAnyScope() }, "at least one"},
		{"RequireAllScopes", func() { middleware.RequireAllScopes() }, "at least one"},
		{"RequireAnyRole", func() { middleware.RequireAnyRole() }, "at least one"},
		{"RequireScopeOrRole", func() { middleware.RequireScopeOrRole(nil, nil) }, "at least one"},
		{"name with a space", func() { middleware.RequireAnyScope("a b") }, "invalid scope or role name"},
		{"full scope URI", func() { middleware.RequireAnyScope("api://6e74172b-be56-4843-9ff4-e66a39bb12e3/Orders.Read") }, `require "Orders.Read"`},
		{"full scope URI, all of", func() { middleware.RequireAllScopes("Orders.Read", "api://orders/Orders.Write") }, `require "Orders.Write"`},
		{"Graph scope URI, scope or role", func() {
			middleware.RequireScopeOrRole([]string{"https://graph.microsoft.com/User.Read"}, []string{"R"})
		}, `require "User.Read"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				p := recover()
				if msg, _ := p.(string); !strings.Contains(msg, tc.mention) {
					t.Errorf("panic %v, want one mentioning %q", p, tc.mention)
				}
			}()
			tc.build()
		})
	}
	// Roles alone are a valid scope-or-role rule.
	middleware.RequireScopeOrRole(nil, []string{"Data.Read.All"})
}

// serve runs h for a request with the bearer token and returns the recorder.
func serve(h http.Handler, token string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	h.ServeHTTP(rec, req)
	return rec
}

// Nothing a caller holds can change a rule after it is built.
func TestGuardsAndConfigCopyWhatTheyAreGiven(t *testing.T) {
	tenant := entratest.NewTenant(t)
	withA, withB := tenant.AccessToken(entratest.Scopes("A")), tenant.AccessToken(entratest.Scopes("B"))
	roleA, roleB := tenant.AppToken(entratest.Roles("A")), tenant.AppToken(entratest.Roles("B"))

	t.Run("guards", func(t *testing.T) {
		a := newAuth(t, tenant)
		scopes, roles := []string{"A"}, []string{"A"}
		guards := map[string]func(http.Handler) http.Handler{
			"RequireAnyScope":    middleware.RequireAnyScope(scopes...),
			"RequireAllScopes":   middleware.RequireAllScopes(scopes...),
			"RequireAnyRole":     middleware.RequireAnyRole(roles...),
			"RequireScopeOrRole": middleware.RequireScopeOrRole(scopes, roles),
		}
		scopes[0], roles[0] = "B", "B"
		for name, g := range guards {
			h := a.RequireAuth(g(echoClaims))
			pass, fail := withA, withB
			if name == "RequireAnyRole" {
				pass, fail = roleA, roleB
			}
			if rec := serve(h, pass); rec.Code != http.StatusOK {
				t.Errorf("%s: token with A after the caller changed its slice: %d, want 200", name, rec.Code)
			}
			if rec := serve(h, fail); rec.Code != http.StatusForbidden {
				t.Errorf("%s: token with B after the caller changed its slice: %d, want 403", name, rec.Code)
			}
		}
	})

	t.Run("error handler editing Error.Scopes", func(t *testing.T) {
		a := newAuth(t, tenant, func(c *middleware.Config) {
			c.ErrorHandler = func(w http.ResponseWriter, r *http.Request, e *middleware.Error) {
				middleware.WriteError(w, r, e)
				if len(e.Scopes) > 0 {
					e.Scopes[0] = "B" // after answering: must not reach later requests
				}
			}
		})
		for _, g := range []func(http.Handler) http.Handler{
			middleware.RequireAnyScope("A"), middleware.RequireAllScopes("A"), middleware.RequireScopeOrRole([]string{"A"}, nil),
		} {
			h := a.RequireAuth(g(echoClaims))
			for range 2 {
				rec := serve(h, withB)
				if rec.Code != http.StatusForbidden || !strings.Contains(rec.Header().Get("WWW-Authenticate"), `scope="A"`) {
					t.Errorf("after the handler edited Scopes: %d %q, want 403 asking for A", rec.Code, rec.Header().Get("WWW-Authenticate"))
				}
			}
			if rec := serve(h, withA); rec.Code != http.StatusOK {
				t.Errorf("token with A: %d", rec.Code)
			}
		}
	})

	t.Run("config", func(t *testing.T) {
		cfg := tenant.Config()
		cfg.Scopes = []string{"A"}
		cfg.Audiences = []string{tenant.ClientID}
		a, err := middleware.New(t.Context(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		cfg.Scopes[0] = "B"
		cfg.Audiences[0] = "someone-else"
		if _, err := a.Validate(t.Context(), withA); err != nil {
			t.Errorf("token with A after the caller changed Config: %v", err)
		}
		if _, err := a.Validate(t.Context(), withB); !errors.Is(err, middleware.ErrInsufficientScope) {
			t.Errorf("token with B after the caller changed Config: %v, want ErrInsufficientScope", err)
		}
	})
}

// A guard without RequireAuth fails closed and says so once.
func TestMisplacedGuardRefusesAndLogsOnce(t *testing.T) {
	var buf lockedBuffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, nil)))
	defer slog.SetDefault(old)
	tenant := entratest.NewTenant(t)
	h := middleware.RequireAnyScope("A")(echoClaims)
	for range 5 {
		if rec := serve(h, tenant.AccessToken(entratest.Scopes("A"))); rec.Code != http.StatusUnauthorized {
			t.Errorf("guard without RequireAuth: %d, want 401", rec.Code)
		}
	}
	if n := strings.Count(buf.String(), "without RequireAuth"); n != 1 {
		t.Errorf("misplaced guard logged %d times, want once:\n%s", n, buf.String())
	}
}

// A guard decides on the claims RequireAuth verified: a middleware between
// them that changes the request's copy (claims.FromContext) changes what
// the handler sees, not what the guard lets through.
func TestGuardsDecideOnVerifiedClaims(t *testing.T) {
	tenant := entratest.NewTenant(t)
	a := newAuth(t, tenant)
	promote := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if c, ok := claims.FromContext(r.Context()); ok {
				c.Roles = append(c.Roles, "Admin")
			}
			next.ServeHTTP(w, r)
		})
	}
	srv := httptest.NewServer(a.RequireAuth(promote(middleware.RequireAnyRole("Admin")(echoClaims))))
	t.Cleanup(srv.Close)
	if r := get(t, srv.URL, "Bearer "+tenant.AccessToken()); r.status != http.StatusForbidden {
		t.Errorf("a token without the role, given it after RequireAuth: %d, want 403", r.status)
	}
}
