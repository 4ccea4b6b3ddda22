package middleware_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/entragate/entragate/claims"
	"github.com/entragate/entragate/middleware"
	"github.com/entragate/entragate/middleware/entratest"
)

// Rules are the transport-neutral authorization the HTTP guards, Authorize
// and the gRPC and gateway modules share: same answers, same errors.
func TestRules(t *testing.T) {
	user := &claims.Claims{Scopes: []string{"Orders.Read", "Orders.Write"}, Roles: []string{"Approver"}}
	daemon := &claims.Claims{Roles: []string{"Orders.Read.All", "Audit"}}
	tests := []struct {
		name   string
		rule   middleware.Rule
		c      *claims.Claims
		ok     bool
		scopes []string // of the refusal
	}{
		{"any scope, one held", middleware.AnyScope("Orders.Read", "Other"), user, true, nil},
		{"any scope, none held", middleware.AnyScope("Other"), user, false, []string{"Other"}},
		{"any scope, app-only token", middleware.AnyScope("Orders.Read"), daemon, false, []string{"Orders.Read"}},
		{"any scope, case matters", middleware.AnyScope("orders.read"), user, false, []string{"orders.read"}},
		{"all scopes, all held", middleware.AllScopes("Orders.Read", "Orders.Write"), user, true, nil},
		{"all scopes, one missing", middleware.AllScopes("Orders.Read", "Orders.Delete"), user, false, []string{"Orders.Read", "Orders.Delete"}},
		{"any role, one held", middleware.AnyRole("Audit", "Other"), daemon, true, nil},
		{"any role, none held", middleware.AnyRole("Other"), daemon, false, nil},
		{"all roles, all held", middleware.AllRoles("Orders.Read.All", "Audit"), daemon, true, nil},
		{"all roles, one missing", middleware.AllRoles("Orders.Read.All", "Other"), daemon, false, nil},
		{"scope or role, the user's scope", middleware.ScopeOrRole([]string{"Orders.Read"}, []string{"Orders.Read.All"}), user, true, nil},
		{"scope or role, the daemon's role", middleware.ScopeOrRole([]string{"Orders.Read"}, []string{"Orders.Read.All"}), daemon, true, nil},
		{"scope or role, neither", middleware.ScopeOrRole([]string{"Other"}, []string{"Other.All"}), daemon, false, []string{"Other"}},
		{"roles only", middleware.ScopeOrRole(nil, []string{"Approver"}), user, true, nil},
		{"zero rule", middleware.Rule{}, user, false, nil},
		{"authenticated, a user", middleware.Authenticated(), user, true, nil},
		{"authenticated, a daemon", middleware.Authenticated(), daemon, true, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.rule.Check(context.Background(), tc.c)
			if tc.ok {
				if err != nil {
					t.Errorf("%v: refused %v", tc.rule, err)
				}
				return
			}
			var e *middleware.Error
			if !errors.As(err, &e) || !errors.Is(err, middleware.ErrInsufficientScope) || e.Status != http.StatusForbidden || e.Code != middleware.CodeInsufficientScope {
				t.Fatalf("%v: %v, want a 403 insufficient_scope *Error", tc.rule, err)
			}
			if !slices.Equal(e.Scopes, tc.scopes) {
				t.Errorf("%v: refusal names scopes %v, want %v", tc.rule, e.Scopes, tc.scopes)
			}
			if e.Description == "" {
				t.Errorf("%v: refusal without a description", tc.rule)
			}
		})
	}
}

// Rules copy what they are given, and String says what they need.
func TestRulesCopyTheirNames(t *testing.T) {
	names := []string{"Orders.Read"}
	r := middleware.AnyScope(names...)
	names[0] = "Anything"
	if err := r.Check(context.Background(), &claims.Claims{Scopes: []string{"Anything"}}); err == nil {
		t.Error("changing the caller's slice changed the rule")
	}
	if got := r.String(); got != "one of the scopes: Orders.Read" {
		t.Errorf("String() = %q", got)
	}
	if got := (middleware.Rule{}).String(); got == "" {
		t.Error("the zero Rule has no description")
	}
}

func TestRuleConstructorsPanicOnBadNames(t *testing.T) {
	for name, build := range map[string]func(){
		"AnyScope with no name":   func() { middleware.AnyScope() },
		"AllRoles with no name":   func() { middleware.AllRoles() },
		"AnyRole with a space":    func() { middleware.AnyRole("a b") },
		"AllScopes with a URI":    func() { middleware.AllScopes("api://x/Orders.Read") },
		"ScopeOrRole with none":   func() { middleware.ScopeOrRole(nil, nil) },
		"ScopeOrRole with a URI":  func() { middleware.ScopeOrRole([]string{"https://graph.microsoft.com/User.Read"}, nil) },
		"AnyScope with a quote":   func() { middleware.AnyScope(`a"b`) },
		"AnyRole with an empty":   func() { middleware.AnyRole("") },
		"AllScopes with a backsl": func() { middleware.AllScopes(`a\b`) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			build()
		})
	}
}

// Authorize is Validate, then the rule: a bad token is refused for what is
// wrong with it, a good one for the permission it lacks.
func TestAuthorize(t *testing.T) {
	tenant := entratest.NewTenant(t)
	a := newAuth(t, tenant)
	rule := middleware.ScopeOrRole([]string{"Orders.Read"}, []string{"Orders.Read.All"})
	tests := []struct {
		name  string
		token string
		want  error
	}{
		{"user with the scope", tenant.AccessToken(entratest.Scopes("Orders.Read")), nil},
		{"daemon with the role", tenant.AppToken(entratest.Roles("Orders.Read.All")), nil},
		{"user without it", tenant.AccessToken(entratest.Scopes("Other")), middleware.ErrInsufficientScope},
		{"expired, with the scope", tenant.AccessToken(entratest.Scopes("Orders.Read"), entratest.Expired()), middleware.ErrTokenExpired},
		{"another API's, with the scope", tenant.AccessToken(entratest.Scopes("Orders.Read"), entratest.Audience("other")), middleware.ErrInvalidAudience},
	}
	for _, tc := range tests {
		for range 2 { // first sight, then from the cache
			c, err := a.Authorize(t.Context(), tc.token, rule)
			if !errors.Is(err, tc.want) || (err == nil) != (tc.want == nil) {
				t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
			}
			if (c != nil) != (tc.want == nil) {
				t.Errorf("%s: claims %v with error %v", tc.name, c, err)
			}
		}
	}
	if _, err := a.Authorize(t.Context(), tenant.AccessToken(), middleware.Rule{}); !errors.Is(err, middleware.ErrInsufficientScope) {
		t.Errorf("the zero Rule: %v, want every token refused", err)
	}
}

// AuthorizeHeader reads Authorization values as RequireAuth does, and
// Challenge is the header RequireAuth sends for the same refusal.
func TestAuthorizeHeaderAnswersAsRequireAuth(t *testing.T) {
	tenant := entratest.NewTenant(t)
	a := newAuth(t, tenant, func(c *middleware.Config) { c.Realm = "orders" })
	rule := middleware.AnyScope("Orders.Read")
	srv := httptest.NewServer(a.RequireAuth(middleware.Require(rule)(echoClaims)))
	t.Cleanup(srv.Close)
	good := tenant.AccessToken(entratest.Scopes("Orders.Read"))
	tests := []struct {
		name   string
		values []string
		want   error
	}{
		{"the token", []string{"Bearer " + good}, nil},
		{"scheme in another case", []string{"bEARER " + good}, nil},
		{"no value", nil, middleware.ErrMissingToken},
		{"another scheme", []string{"Basic dXNlcjpwYXNz"}, middleware.ErrMissingToken},
		{"an empty value", []string{""}, middleware.ErrMissingToken},
		{"two values", []string{"Bearer " + good, "Bearer " + good}, middleware.ErrMalformedRequest},
		{"two tokens in one value", []string{"Bearer " + good + " " + good}, middleware.ErrMalformedRequest},
		{"no token after the scheme", []string{"Bearer "}, middleware.ErrMalformedRequest},
		{"expired", []string{"Bearer " + tenant.AccessToken(entratest.Scopes("Orders.Read"), entratest.Expired())}, middleware.ErrTokenExpired},
		{"without the scope", []string{"Bearer " + tenant.AccessToken(entratest.Scopes("Other"))}, middleware.ErrInsufficientScope},
	}
	for _, tc := range tests {
		ctx, err := a.AuthorizeHeader(t.Context(), tc.values, rule)
		if err == nil {
			if c, ok := claims.FromContext(ctx); !ok || c.ObjectID != tenant.User.ObjectID {
				t.Errorf("%s: the context carries claims %v", tc.name, c)
			}
		}
		if !errors.Is(err, tc.want) || (err == nil) != (tc.want == nil) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
			continue
		}
		httpAnswer := get(t, srv.URL, tc.values...)
		var e *middleware.Error
		if errors.As(err, &e) && httpAnswer.status != e.Status {
			t.Errorf("%s: status %d over HTTP, %d from AuthorizeHeader", tc.name, httpAnswer.status, e.Status)
		}
		if got := a.Challenge(err); got != httpAnswer.challenge {
			t.Errorf("%s: Challenge %q, RequireAuth sends %q", tc.name, got, httpAnswer.challenge)
		}
	}
	if got := a.Challenge(errors.New("other")); got != "" {
		t.Errorf("Challenge of a foreign error: %q", got)
	}
}
