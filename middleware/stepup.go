package middleware

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/entragate/entragate/claims"
)

// Step-up rules: a token that is valid but not strong or fresh enough for
// an operation gets Entra's claims challenge (401 insufficient_claims),
// naming the claims a new token must carry. The client asks Entra for
// such a token (MSAL's WithClaims with the challenge's claims, which
// sends the user through sign-in when Conditional Access needs it) and
// retries. The challenge's realm and authorization_uri are the API's
// authority's, filled in by the Authenticator that routed the token.

// AuthContext passes a user token that satisfied at least one of the
// Conditional Access authentication contexts ids (the acrs claim), e.g.
// AuthContext("c1") for an operation an administrator protects with a
// policy on context c1 (phishing-resistant MFA, a compliant device). A
// user token without one gets 401 insufficient_claims with a claims
// challenge requesting it:
//
//	WWW-Authenticate: Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize",
//	    error="insufficient_claims", claims="eyJhY2Nlc3NfdG9rZW4iOnsiYWNycyI6eyJlc3NlbnRpYWwiOnRydWUsInZhbHVlIjoiYzEifX19"
//
// (the claims are {"access_token":{"acrs":{"essential":true,"value":"c1"}}};
// with several ids, "values" lists them). An app-only token cannot
// satisfy an authentication context, which only a user's sign-in does: it
// gets 403 saying so. Entra puts acrs in a token only for contexts the
// client asked for, so a client must be ready for the challenge (see
// APIConfig.ChallengeOnlyCapableClients). An authentication context is
// what the token's tenant made it: on a multi-tenant API, wrap the rule in
// InTenants with the tenants whose policies count, or it refuses every
// token.
func AuthContext(ids ...string) Rule {
	mustValues("AuthContext", "authentication context ID", ids)
	ids = slices.Clone(ids)
	request := claimsRequest("acrs", ids...)
	desc := "authentication context " + strings.Join(ids, " or ")
	return Rule{desc: desc, check: func(ctx context.Context, c *claims.Claims) *Error {
		if e := tenantRelative(ctx); e != nil {
			return e
		}
		if slices.ContainsFunc(ids, c.HasAuthContext) {
			return nil
		}
		return authContextMissing(c, desc, request)
	}}
}

// AllAuthContexts passes a user token that satisfied every one of the
// authentication contexts ids. A token lacking some is challenged for the
// first one it lacks, since a claims request asks for one value of a
// claim; the client steps up once per missing context.
func AllAuthContexts(ids ...string) Rule {
	mustValues("AllAuthContexts", "authentication context ID", ids)
	ids = slices.Clone(ids)
	requests := make([]string, len(ids))
	for i, id := range ids {
		requests[i] = claimsRequest("acrs", id)
	}
	return Rule{desc: "authentication contexts " + strings.Join(ids, " and "), check: func(ctx context.Context, c *claims.Claims) *Error {
		if e := tenantRelative(ctx); e != nil {
			return e
		}
		for i, id := range ids {
			if !c.HasAuthContext(id) {
				return authContextMissing(c, "authentication context "+id, requests[i])
			}
		}
		return nil
	}}
}

func authContextMissing(c *claims.Claims, desc, request string) *Error {
	if c.IsAppOnly() {
		return stepUpRefused("this operation needs Conditional Access " + desc + ", which only a user's sign-in satisfies: app-only tokens cannot carry it")
	}
	e := newError(ErrInsufficientClaims, "this operation needs Conditional Access "+desc+": get a new token with the claims of the challenge", nil)
	e.Claims = request
	return e
}

// IssuedAfter passes a token issued at or after the time since returns for
// its caller, for an API that learns of revoked sessions (a password
// reset, a user disabled, its own "sign out everywhere") and must stop
// accepting the tokens issued before: since returns the zero time when
// nothing is required. An older token gets 401 insufficient_claims with
// the claims challenge Microsoft Graph sends for revoked sessions,
// {"access_token":{"nbf":{"essential":true,"value":"<unix time>"}}}: the
// client's MSAL skips its token cache and asks Entra for a new token,
// which Entra issues only if the session is still valid. An error from
// since is 503 ErrAuthorizationUnavailable: the API cannot tell.
//
// since runs on every request the rule guards, cached tokens included:
// keep it fast (an in-memory map fed by events, not a database query).
func IssuedAfter(since func(ctx context.Context, c *claims.Claims) (time.Time, error)) Rule {
	if since == nil {
		panic("entragate: IssuedAfter needs a function")
	}
	return Rule{desc: "a token issued after the caller's last revocation", check: func(ctx context.Context, c *claims.Claims) *Error {
		after, err := since(ctx, c.Clone()) // the caller's own: c is the cache's
		switch {
		case err != nil:
			e := newError(ErrAuthorizationUnavailable, "the token's freshness cannot be checked right now", err)
			e.RetryAfterSeconds = defaultAuthorizationRetry
			return e
		case after.IsZero():
			return nil
		}
		issued := c.IssuedAt
		if issued.IsZero() {
			issued = c.NotBefore
		}
		// Token times have whole seconds.
		after = after.Truncate(time.Second)
		if !issued.IsZero() && !issued.Before(after) {
			return nil
		}
		e := newError(ErrInsufficientClaims, "the token was issued before the caller's sessions were revoked: get a new token with the claims of the challenge", nil)
		e.Claims = claimsRequest("nbf", strconv.FormatInt(after.Unix(), 10))
		e.freshness = true
		return e
	}}
}

// defaultAuthorizationRetry is the Retry-After of an unavailable
// authorization lookup, in seconds.
const defaultAuthorizationRetry = 5

// claimsRequest is the minified OpenID Connect claims request for one
// essential access-token claim, with one value or (several) values, in
// the member order of Microsoft's examples.
func claimsRequest(claim string, values ...string) string {
	type request struct {
		Essential bool     `json:"essential"`
		Value     string   `json:"value,omitempty"`
		Values    []string `json:"values,omitempty"`
	}
	r := request{Essential: true}
	if len(values) == 1 {
		r.Value = values[0]
	} else {
		r.Values = values
	}
	b, _ := json.Marshal(map[string]map[string]request{"access_token": {claim: r}})
	return string(b)
}

// staleToken answers a token issued before a revocation when no claims
// challenge can be sent: 401 invalid_token, which any client answers by
// getting a new token (a 403 would tell it not to retry).
func staleToken() *Error {
	e := newError(ErrInsufficientClaims, "the token was issued before the caller's sessions were revoked; get a new token", nil)
	e.Code = CodeInvalidToken
	return e
}

// stepUpRefused is a step-up rule's answer when no new token can help:
// 403, reason ErrInsufficientClaims.
func stepUpRefused(description string) *Error {
	e := newError(ErrInsufficientClaims, description, nil)
	e.Status, e.Code = http.StatusForbidden, CodeInsufficientScope
	return e
}

// completeChallenge finishes a rule's claims challenge for the token's
// authority (src; nil when unknown): its realm and authorization_uri, or
// a 403 when its users cannot step up, or when the API challenges only
// clients that declared cp1 and this one did not. Any other answer is
// returned as it is.
func (a *Authenticator) completeChallenge(e *Error, src *source, c *claims.Claims) *Error {
	if e == nil || e.Reason != ErrInsufficientClaims || e.Status != http.StatusUnauthorized || e.Claims == "" {
		return e
	}
	if a.s.capableClientsOnly && !c.CanHandleClaimsChallenges() {
		if e.freshness {
			return staleToken()
		}
		return stepUpRefused(strings.TrimSuffix(e.Description, ": get a new token with the claims of the challenge") +
			"; the client app did not declare the cp1 capability (xms_cc), so it cannot be asked for a new token")
	}
	if src == nil {
		return e
	}
	realm, uri, ok := src.auth.shape.stepUp(&src.auth.Authority, src.state.Load())
	switch {
	case !ok && e.freshness:
		return staleToken()
	case !ok:
		return stepUpRefused("this operation needs a step-up that this API's identity provider cannot give")
	}
	out := *e
	out.claimsRealm, out.AuthorizationURI = realm, uri
	return &out
}

// ClaimsChallenge is the 401 insufficient_claims answer for a request
// whose verified claims c (claims.FromContext) are not enough for
// something beyond this API's own rules: a middle tier whose on-behalf-of
// request Entra refused for want of the user (interaction_required,
// consent_required) passes Entra's claims back to its client this way,
// which signs the user in again with them. claimsRequest is the JSON
// claims request (Entra's claims; "{}" or "" when it sent none, which
// asks the client for a new interactive sign-in). The challenge names the
// authority of c's token, as a step-up rule's does, and follows
// ChallengeOnlyCapableClients; description is caller-safe text for the
// body. Write it with WriteError.
func (a *Authenticator) ClaimsChallenge(c *claims.Claims, claimsRequest, description string) *Error {
	if claimsRequest == "" || !json.Valid([]byte(claimsRequest)) || strings.TrimSpace(claimsRequest)[0] != '{' {
		claimsRequest = "{}"
	}
	if description == "" {
		description = "get a new token with the claims of the challenge"
	}
	e := newError(ErrInsufficientClaims, description, nil)
	e.Claims = claimsRequest
	var src *source
	if c != nil {
		if found := a.p.router.index.Load().lookup(c.Issuer, c.TenantID); len(found) > 0 {
			src = found[0]
		}
	}
	return a.completeChallenge(e, src, c)
}
