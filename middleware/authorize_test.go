package middleware_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-chi/chi/v5"

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
	for name, build := range map[string]func(){
		"RequireAnyScope":    func() { middleware.RequireAnyScope() },
		"RequireAllScopes":   func() { middleware.RequireAllScopes() },
		"RequireAnyRole":     func() { middleware.RequireAnyRole() },
		"RequireScopeOrRole": func() { middleware.RequireScopeOrRole(nil, nil) },
		"name with a space":  func() { middleware.RequireAnyScope("a b") },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic for a guard that would let nobody or everybody through")
				}
			}()
			build()
		})
	}
}
