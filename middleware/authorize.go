package middleware

import (
	"log/slog"
	"net/http"
	"slices"
	"strings"

	"github.com/entragate/entragate/claims"
)

// Per-route authorization. Each guard is plain middleware to put after
// RequireAuth, e.g. chi's r.With(middleware.RequireAnyScope("Files.Read")).
// A token without the permission gets 403 insufficient_scope. Matches are
// exact and case-sensitive, like Entra's scope and role values.
//
// The guards panic when given no scope or role: that is a programming error
// best found at start-up, not a route that silently lets everyone through.

// RequireAnyScope lets a request through when its token has at least one of
// the delegated scopes (scp). App-only tokens have no scopes and are refused.
func RequireAnyScope(scopes ...string) func(http.Handler) http.Handler {
	mustNames("RequireAnyScope", scopes)
	return guard(func(c *claims.Claims) *Error { return authorizeAny(c, scopes, nil) })
}

// RequireAllScopes lets a request through when its token has every one of
// the delegated scopes.
func RequireAllScopes(scopes ...string) func(http.Handler) http.Handler {
	mustNames("RequireAllScopes", scopes)
	return guard(func(c *claims.Claims) *Error {
		var missing []string
		for _, s := range scopes {
			if !c.HasScope(s) {
				missing = append(missing, s)
			}
		}
		if len(missing) == 0 {
			return nil
		}
		e := newError(ErrInsufficientScope, "the token lacks the scopes: "+strings.Join(missing, " "), nil)
		e.Scopes = scopes
		return e
	})
}

// RequireAnyRole lets a request through when its token has at least one of
// the app roles (roles): application permissions of a daemon, or roles
// assigned to the user.
func RequireAnyRole(roles ...string) func(http.Handler) http.Handler {
	mustNames("RequireAnyRole", roles)
	return guard(func(c *claims.Claims) *Error { return authorizeAny(c, nil, roles) })
}

// RequireScopeOrRole lets a request through when its token has one of the
// delegated scopes or one of the app roles: a route reached both by users
// through a client app and by daemon apps, like Microsoft.Identity.Web's
// RequiredScopeOrAppPermission.
func RequireScopeOrRole(scopes, roles []string) func(http.Handler) http.Handler {
	mustNames("RequireScopeOrRole", append(slices.Clone(scopes), roles...))
	return guard(func(c *claims.Claims) *Error { return authorizeAny(c, scopes, roles) })
}

// authorizeAny passes when c has any of scopes or any of roles.
func authorizeAny(c *claims.Claims, scopes, roles []string) *Error {
	for _, s := range scopes {
		if c.HasScope(s) {
			return nil
		}
	}
	for _, r := range roles {
		if c.HasRole(r) {
			return nil
		}
	}
	var want []string
	if len(scopes) > 0 {
		want = append(want, "one of the scopes: "+strings.Join(scopes, " "))
	}
	if len(roles) > 0 {
		want = append(want, "one of the app roles: "+strings.Join(roles, " "))
	}
	e := newError(ErrInsufficientScope, "the token needs "+strings.Join(want, ", or "), nil)
	e.Scopes = scopes
	return e
}

func guard(check func(*claims.Claims) *Error) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, ok := claims.FromContext(r.Context())
			if !ok {
				// Fail closed: the guard was mounted without RequireAuth.
				slog.Default().Error("entragate: a Require* guard ran without RequireAuth before it; refusing the request",
					slog.String("path", r.URL.Path))
				refuse(w, r, newError(ErrMissingToken, "this API requires a bearer token", nil))
				return
			}
			if e := check(c); e != nil {
				if st := stateFrom(r); st != nil && st.logger != nil {
					logRefusal(st.logger, r, e, c)
				}
				refuse(w, r, e)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

func mustNames(fn string, names []string) {
	if len(names) == 0 {
		panic("entragate: " + fn + " needs at least one scope or role")
	}
	for _, n := range names {
		if n == "" || strings.ContainsAny(n, " \t\"\\") {
			panic("entragate: " + fn + ": invalid scope or role name " + `"` + n + `"`)
		}
	}
}
