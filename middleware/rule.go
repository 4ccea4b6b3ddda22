package middleware

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/entragate/entragate/claims"
)

// A Rule is an authorization requirement on a verified token's claims,
// independent of any transport: the HTTP guards (Require and the
// Require* middleware), Authenticator.Authorize (for gRPC interceptors,
// gateways, queue consumers), entragrpc and forwardauth all apply
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

// IsZero reports whether r is the zero Rule, which lets no token through.
func (r Rule) IsZero() bool { return r.check == nil }

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

func mustNames(fn string, names []string) { mustValues(fn, "scope or role name", names) }

// mustValues panics unless values holds at least one value, each a valid
// name; what says what they are, for the message.
func mustValues(fn, what string, values []string) {
	if len(values) == 0 {
		panic("entragate: " + fn + " needs at least one " + what)
	}
	for _, v := range values {
		if !validName(v) {
			panic("entragate: " + fn + ": invalid " + what + " " + `"` + v + `"`)
		}
	}
}

// All passes a token that passes every one of rules: AnyScope("Payments.Write")
// and AuthContext("c1") together, say. A token that fails several gets the
// answer that helps it most: a refusal no new token can change (403)
// before a rule's unavailability (503), and either before a claims
// challenge, so that a user is never sent to step up only to be refused.
func All(rules ...Rule) Rule {
	mustRules("All", rules)
	rules = slices.Clone(rules)
	return Rule{desc: "all of (" + describeRules(rules) + ")", check: func(ctx context.Context, c *claims.Claims) *Error {
		var pending *Error // the first 503 or claims challenge
		for _, r := range rules {
			e := r.check(ctx, c)
			switch {
			case e == nil:
			case e.Status == http.StatusForbidden:
				return e
			case pending == nil || (pending.Status != http.StatusServiceUnavailable && e.Status == http.StatusServiceUnavailable):
				pending = e
			}
		}
		return pending
	}}
}

// Any passes a token that passes at least one of rules: ScopeOrRole across
// rule kinds, e.g. Any(AnyRole("Approver"), groups.Any(approversGroupID)).
// A token that passes none gets, in order of preference, a rule's
// unavailability (503: it might have passed), a claims challenge (the
// client can do something about it), or the first rule's answer.
func Any(rules ...Rule) Rule {
	mustRules("Any", rules)
	rules = slices.Clone(rules)
	return Rule{desc: "any of (" + describeRules(rules) + ")", check: func(ctx context.Context, c *claims.Claims) *Error {
		var first, unavailable, challenge *Error
		for _, r := range rules {
			e := r.check(ctx, c)
			switch {
			case e == nil:
				return nil
			case e.Status == http.StatusServiceUnavailable && unavailable == nil:
				unavailable = e
			case e.Reason == ErrInsufficientClaims && e.Status == http.StatusUnauthorized && challenge == nil:
				challenge = e
			case first == nil:
				first = e
			}
		}
		switch {
		case unavailable != nil:
			return unavailable
		case challenge != nil:
			return challenge
		}
		return first
	}}
}

func mustRules(fn string, rules []Rule) {
	if len(rules) == 0 {
		panic("entragate: " + fn + " needs at least one rule")
	}
	for _, r := range rules {
		if r.check == nil {
			panic("entragate: " + fn + ": a zero Rule refuses every token; build rules with the constructors")
		}
	}
}

func describeRules(rules []Rule) string {
	descs := make([]string, len(rules))
	for i, r := range rules {
		descs[i] = r.desc
	}
	return strings.Join(descs, "; ")
}

// routeKey finds, in a rule's context, the document that checked the
// token (*source): RequireAuth's authContext answers it, Authorize and
// AuthorizeHeader add it. Rule.Check knows none.
type routeKey struct{}

func withRoute(ctx context.Context, src *source) context.Context {
	if src == nil {
		return ctx
	}
	return context.WithValue(ctx, routeKey{}, src)
}

// pinnedKey marks a rule's context inside InTenants.
type pinnedKey struct{}

// InTenants passes a token of one of the tenants tenantIDs that passes
// rule. On a multi-tenant API it is what lets the rules that mean
// something only in one tenant (AnyDirectoryRole, AllDirectoryRoles,
// AuthContext, AllAuthContexts) work: directory role template IDs are the
// same in every tenant, and an authentication context is whatever the
// token's tenant made it, so without it they would let in the
// administrators, or the Conditional Access, of any tenant admitted.
// Outside InTenants, such a rule refuses every token a multi-tenant
// authority issued.
func InTenants(tenantIDs []string, rule Rule) Rule {
	ids := mustGUIDs("InTenants", "tenant ID", tenantIDs)
	mustRules("InTenants", []Rule{rule})
	return Rule{desc: "in tenants " + strings.Join(ids, " ") + ": " + rule.desc, check: func(ctx context.Context, c *claims.Claims) *Error {
		if !slices.ContainsFunc(ids, func(id string) bool { return strings.EqualFold(id, c.TenantID) }) {
			return newError(ErrInsufficientScope, "the token's tenant cannot grant this operation", nil)
		}
		return rule.check(context.WithValue(ctx, pinnedKey{}, true), c)
	}}
}

// errUnpinned explains, in logs, a tenant-relative rule's refusal.
var errUnpinned = errors.New("a rule that means something in one tenant only (directory roles, authentication contexts) " +
	"checked a token of a multi-tenant authority: wrap it in InTenants with the tenants that count, or every admitted tenant's administrators pass")

// tenantRelative refuses a token of a multi-tenant authority in a rule
// that means something only in one tenant, unless InTenants pinned it.
func tenantRelative(ctx context.Context) *Error {
	src, _ := ctx.Value(routeKey{}).(*source)
	if src == nil || src.auth.admit == nil || ctx.Value(pinnedKey{}) != nil {
		return nil
	}
	return newError(ErrInsufficientScope, "the token's tenant cannot grant this operation", errUnpinned)
}
