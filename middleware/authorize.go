package middleware

import (
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/entragate/entragate/claims"
)

// Per-route authorization. Each guard is plain middleware, with the same
// contract:
//
//   - It must run after RequireAuth, e.g. chi's
//     r.With(middleware.RequireAnyScope("Files.Read")) inside a group that
//     uses auth.RequireAuth, or RequireAuth(RequireAnyScope(...)(h)) on a
//     ServeMux. It reads the claims RequireAuth stored; without them it
//     fails closed: every request gets 401, and the misconfiguration is
//     logged once (to slog.Default), not on every request.
//   - A token without the permission gets 403 insufficient_scope, answered
//     by the ErrorHandler of the RequireAuth before it.
//   - Matches are exact and case-sensitive, like Entra's scope and role
//     values.
//   - The names given are copied: changing the caller's slice afterwards
//     changes nothing.
//   - A guard panics when it is built with no name, or with an empty name
//     or one containing a space, quote or backslash: a programming error
//     best found at start-up, not a route that silently lets everyone
//     through.

// RequireAnyScope lets a request through when its token has at least one of
// the delegated scopes (scp). App-only tokens have no scopes and are refused.
// Scopes are bare names (Orders.Read), as scp carries them, not the URIs
// clients request (api://<app-id>/Orders.Read): a URI panics.
func RequireAnyScope(scopes ...string) func(http.Handler) http.Handler {
	mustScopes("RequireAnyScope", scopes)
	scopes = slices.Clone(scopes)
	return guard(func(c *claims.Claims) *Error { return authorizeAny(c, scopes, nil) })
}

// RequireAllScopes lets a request through when its token has every one of
// the delegated scopes.
func RequireAllScopes(scopes ...string) func(http.Handler) http.Handler {
	mustScopes("RequireAllScopes", scopes)
	scopes = slices.Clone(scopes)
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
		e.Scopes = slices.Clone(scopes)
		return e
	})
}

// RequireAnyRole lets a request through when its token has at least one of
// the app roles (roles): application permissions of a daemon, or roles
// assigned to the user.
func RequireAnyRole(roles ...string) func(http.Handler) http.Handler {
	mustNames("RequireAnyRole", roles)
	roles = slices.Clone(roles)
	return guard(func(c *claims.Claims) *Error { return authorizeAny(c, nil, roles) })
}

// RequireScopeOrRole lets a request through when its token has one of the
// delegated scopes or one of the app roles: a route reached both by users
// through a client app and by daemon apps, like Microsoft.Identity.Web's
// RequiredScopeOrAppPermission.
func RequireScopeOrRole(scopes, roles []string) func(http.Handler) http.Handler {
	mustNames("RequireScopeOrRole", append(slices.Clone(scopes), roles...))
	mustBareScopes("RequireScopeOrRole", scopes)
	scopes, roles = slices.Clone(scopes), slices.Clone(roles)
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
	e.Scopes = slices.Clone(scopes)
	return e
}

func guard(check func(*claims.Claims) *Error) func(http.Handler) http.Handler {
	var misplaced sync.Once
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, ok := claims.FromContext(r.Context())
			if !ok {
				// Fail closed: the guard was mounted without RequireAuth.
				misplaced.Do(func() {
					slog.Default().Error("entragate: a Require* guard runs without RequireAuth before it; every request it sees is refused",
						slog.String("path", r.URL.Path))
				})
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

// mustScopes is mustNames for scopes, which must also be bare names.
func mustScopes(fn string, scopes []string) {
	mustNames(fn, scopes)
	mustBareScopes(fn, scopes)
}

func mustBareScopes(fn string, scopes []string) {
	for _, s := range scopes {
		if msg := scopeURIMistake(s); msg != "" {
			panic("entragate: " + fn + ": " + msg)
		}
	}
}

func mustNames(fn string, names []string) {
	if len(names) == 0 {
		panic("entragate: " + fn + " needs at least one scope or role")
	}
	for _, n := range names {
		if !validName(n) {
			panic("entragate: " + fn + ": invalid scope or role name " + `"` + n + `"`)
		}
	}
}
