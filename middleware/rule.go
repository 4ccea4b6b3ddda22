package middleware

import (
	"context"
	"slices"
	"strings"

	"github.com/entragate/entragate/claims"
)

// A Rule is an authorization requirement on a verified token's claims,
// independent of any transport: the HTTP guards (Require and the
// Require* middleware), Authenticator.Authorize (for gRPC interceptors,
// gateways, queue consumers) and the gRPC and gateway modules all apply
// the same values and get the same *Error (403 insufficient_scope, with
// the scopes that would satisfy it) when a token lacks what a rule needs.
//
// Build rules with Authenticated, AnyScope, AllScopes, AnyRole, AllRoles or
// ScopeOrRole.
// Names match exactly and case-sensitively, like Entra's scope and role
// values; the names given are copied. A constructor panics when given no
// name, an empty name or one with a space, quote or backslash, or a full
// scope URI where scp carries a bare name: a programming error best found
// at start-up, not a route that silently lets nobody (or everybody) in.
//
// The zero Rule lets no token through.
type Rule struct {
	desc  string
	check func(ctx context.Context, c *claims.Claims) *Error
}

// Check applies r to verified claims: nil, or an *Error saying what is
// missing.
func (r Rule) Check(ctx context.Context, c *claims.Claims) error {
	if e := r.apply(ctx, c); e != nil {
		return e
	}
	return nil
}

func (r Rule) apply(ctx context.Context, c *claims.Claims) *Error {
	if r.check == nil {
		return newError(ErrInsufficientScope, "no authorization rule is configured for this operation", nil)
	}
	return r.check(ctx, c)
}

// String describes the rule, e.g. "any scope of Orders.Read Orders.Write".
func (r Rule) String() string {
	if r.check == nil {
		return "no token (zero Rule)"
	}
	return r.desc
}

// Authenticated passes every token the Authenticator accepts: the API's
// own rules (APIConfig.Scopes and Roles, guests) and nothing more, as
// RequireAuth without a guard.
func Authenticated() Rule {
	return Rule{desc: "any token this API accepts", check: func(context.Context, *claims.Claims) *Error { return nil }}
}

// AnyScope passes a token with at least one of the delegated scopes (scp).
// App-only tokens have no scopes and are refused.
func AnyScope(scopes ...string) Rule {
	mustScopes("AnyScope", scopes)
	return scopeOrRole(slices.Clone(scopes), nil)
}

// AllScopes passes a token with every one of the delegated scopes.
func AllScopes(scopes ...string) Rule {
	mustScopes("AllScopes", scopes)
	scopes = slices.Clone(scopes)
	return Rule{desc: "all scopes of " + strings.Join(scopes, " "), check: func(_ context.Context, c *claims.Claims) *Error {
		missing := missingFrom(scopes, c.HasScope)
		if len(missing) == 0 {
			return nil
		}
		e := newError(ErrInsufficientScope, "the token lacks the scopes: "+strings.Join(missing, " "), nil)
		e.Scopes = slices.Clone(scopes)
		return e
	}}
}

// AnyRole passes a token with at least one of the app roles (roles):
// application permissions of a daemon, or roles assigned to the user.
func AnyRole(roles ...string) Rule {
	mustNames("AnyRole", roles)
	return scopeOrRole(nil, slices.Clone(roles))
}

// AllRoles passes a token with every one of the app roles.
func AllRoles(roles ...string) Rule {
	mustNames("AllRoles", roles)
	roles = slices.Clone(roles)
	return Rule{desc: "all app roles of " + strings.Join(roles, " "), check: func(_ context.Context, c *claims.Claims) *Error {
		missing := missingFrom(roles, c.HasRole)
		if len(missing) == 0 {
			return nil
		}
		return newError(ErrInsufficientScope, "the token lacks the app roles: "+strings.Join(missing, " "), nil)
	}}
}

// ScopeOrRole passes a token with one of the delegated scopes or one of the
// app roles: an operation reached both by users through a client app and
// by daemon apps, like Microsoft.Identity.Web's
// RequiredScopeOrAppPermission. Either list may be empty, not both.
func ScopeOrRole(scopes, roles []string) Rule {
	mustNames("ScopeOrRole", append(slices.Clone(scopes), roles...))
	mustBareScopes("ScopeOrRole", scopes)
	return scopeOrRole(slices.Clone(scopes), slices.Clone(roles))
}

// scopeOrRole is the rule behind AnyScope, AnyRole, ScopeOrRole and
// Config.Scopes/Roles; the lists are the rule's own.
func scopeOrRole(scopes, roles []string) Rule {
	var want []string
	if len(scopes) > 0 {
		want = append(want, "one of the scopes: "+strings.Join(scopes, " "))
	}
	if len(roles) > 0 {
		want = append(want, "one of the app roles: "+strings.Join(roles, " "))
	}
	desc := "the token needs " + strings.Join(want, ", or ")
	return Rule{desc: strings.TrimPrefix(desc, "the token needs "), check: func(_ context.Context, c *claims.Claims) *Error {
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
		e := newError(ErrInsufficientScope, desc, nil)
		e.Scopes = slices.Clone(scopes)
		return e
	}}
}

func missingFrom(names []string, has func(string) bool) []string {
	var missing []string
	for _, n := range names {
		if !has(n) {
			missing = append(missing, n)
		}
	}
	return missing
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
