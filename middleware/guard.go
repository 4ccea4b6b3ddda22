package middleware

import (
	"log/slog"
	"net/http"
	"slices"
	"sync"

	"github.com/entragate/entragate/claims"
)

// Per-route authorization over HTTP. Each guard is plain middleware over a
// Rule, with the same contract:
//
//   - It must run after RequireAuth, e.g. chi's
//     r.With(middleware.RequireAnyScope("Files.Read")) inside a group that
//     uses auth.RequireAuth, or RequireAuth(RequireAnyScope(...)(h)) on a
//     ServeMux. It decides on the claims RequireAuth verified, not on the
//     request's copy (claims.FromContext), which code in between may have
//     changed; without RequireAuth it reads claims.FromContext (claims a
//     test put there), and without those it fails closed: every request
//     gets 401, and the misconfiguration is logged once (to
//     slog.Default), not on every request.
//   - A token without the permission gets 403 insufficient_scope (or what
//     the rule answers), written by the ErrorHandler of the RequireAuth
//     before it, which also counts the request as refused for its
//     Observer.
//   - The rule's contract holds: exact, case-sensitive names, copied;
//     a panic at start-up for no name or a malformed one.

// Require lets a request through when its token passes rule.
func Require(rule Rule) func(http.Handler) http.Handler {
	return guard(rule)
}

// RequireAnyScope is Require(AnyScope(scopes...)): at least one of the
// delegated scopes (scp). Scopes are bare names (Orders.Read), as scp
// carries them, not the URIs clients request (api://<app-id>/Orders.Read).
func RequireAnyScope(scopes ...string) func(http.Handler) http.Handler {
	mustScopes("RequireAnyScope", scopes)
	return guard(scopeOrRole(slices.Clone(scopes), nil))
}

// RequireAllScopes is Require(AllScopes(scopes...)): every one of the
// delegated scopes.
func RequireAllScopes(scopes ...string) func(http.Handler) http.Handler {
	mustScopes("RequireAllScopes", scopes)
	return guard(AllScopes(scopes...))
}

// RequireAnyRole is Require(AnyRole(roles...)): at least one of the app
// roles (roles), application permissions of a daemon or roles assigned
// to the user.
func RequireAnyRole(roles ...string) func(http.Handler) http.Handler {
	mustNames("RequireAnyRole", roles)
	return guard(scopeOrRole(nil, slices.Clone(roles)))
}

// RequireScopeOrRole is Require(ScopeOrRole(scopes, roles)): one of the
// delegated scopes or one of the app roles, for a route reached both by
// users and by daemons, like Microsoft.Identity.Web's
// RequiredScopeOrAppPermission.
func RequireScopeOrRole(scopes, roles []string) func(http.Handler) http.Handler {
	mustNames("RequireScopeOrRole", append(slices.Clone(scopes), roles...))
	mustBareScopes("RequireScopeOrRole", scopes)
	return guard(scopeOrRole(slices.Clone(scopes), slices.Clone(roles)))
}

func guard(rule Rule) func(http.Handler) http.Handler {
	var misplaced sync.Once
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			st := stateFrom(r)
			c, ok := claims.FromContext(r.Context())
			if st != nil && st.verified != nil {
				// The verified claims, not the request's copy, which code
				// between RequireAuth and the guard may have changed.
				c, ok = st.verified, true
			}
			if !ok {
				// Fail closed: the guard was mounted without RequireAuth.
				misplaced.Do(func() {
					slog.Default().Error("entragate: a Require* guard runs without RequireAuth before it; every request it sees is refused",
						slog.String("path", r.URL.Path))
				})
				WriteError(w, r, newError(ErrMissingToken, "this API requires a bearer token", nil))
				return
			}
			if e := rule.apply(r.Context(), c); e != nil {
				if st != nil {
					st.refuse(w, r, e, c)
				} else {
					// Claims put in the context by other means (a test's
					// claims.NewContext): the default answer.
					WriteError(w, r, e)
				}
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}
