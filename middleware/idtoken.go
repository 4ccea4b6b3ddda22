package middleware

import (
	"context"
	"crypto/subtle"
	"strings"

	"github.com/entragate/entragate/claims"
)

// VerifyIDToken checks an OpenID Connect ID token that a web app received
// when it signed a user in, and returns its claims (name,
// PreferredUsername, Email, ObjectID, TenantID, SessionID, AuthTime,
// LoginHint...). Config.ClientID is then the web app's own application ID.
//
// The token is checked on the same authorities, keys and time rules as
// access tokens: the RS256 signature against the issuer's published keys,
// exp, nbf and iat with the leeway, iss and tid (single tenant, or a
// multi-tenant template filled from tid and the tenant's admission), and
// the version. Beyond that, an ID token must be addressed to the app (aud
// is exactly ClientID; azp, when present, too), carry the nonce the app
// sent with its authorization request (nonce must not be empty), and not
// be an access token (no scp). An ID token never passes RequireAuth or
// Validate, and an access token never passes VerifyIDToken.
//
// Verify the ID token of a sign-in, once, when the app receives it: the
// ID tokens Entra returns later, with refreshed tokens, carry no nonce and
// are refused. OpenID Connect requires iat and sub; a token without them
// is refused too.
//
// Config.Audiences, Scopes and Roles do not apply to ID tokens;
// DenyGuestUsers does. Every error is an *Error; the reasons specific to ID
// tokens are ErrInvalidNonce and ErrNotIDToken.
func (a *Authenticator) VerifyIDToken(ctx context.Context, rawIDToken, nonce string) (*claims.Claims, error) {
	c, e := a.verifyIDToken(ctx, rawIDToken, nonce)
	if e != nil {
		return nil, e
	}
	return c, nil
}

func (a *Authenticator) verifyIDToken(ctx context.Context, raw, nonce string) (*claims.Claims, *Error) {
	if a.ctx.Err() != nil {
		return nil, closedError()
	}
	if len(raw) > a.s.MaxTokenSize {
		return nil, newError(ErrTokenTooLarge, "the token exceeds the accepted size", nil)
	}
	if nonce == "" {
		// Without a nonce, a token stolen from another sign-in could be
		// replayed into this one (OpenID Connect Core §15.5.2).
		return nil, newError(ErrInvalidNonce, "an ID token is verified against the nonce of the sign-in that requested it; none was given", nil)
	}
	tok, c, e := parseToken(raw)
	if e != nil {
		return nil, e
	}
	if e := a.checkIDClaims(c, nonce); e != nil {
		return nil, e
	}
	v, e := a.verifyIssuer(ctx, tok, c)
	if e != nil {
		return nil, e
	}
	if a.s.DenyGuestUsers && v.src.auth.kind != kindB2C && c.IsGuest() {
		return nil, newError(ErrGuestUser, "guest users of the tenant are not allowed to sign in to this app", nil)
	}
	return c, nil
}

// checkIDClaims applies the rules of OpenID Connect Core §3.1.3.7 that need
// no keys, and tells ID tokens from access tokens.
func (a *Authenticator) checkIDClaims(c *claims.Claims, nonce string) *Error {
	if e := a.checkTimes(c, a.s.now()); e != nil {
		return e
	}
	switch {
	case len(c.Scopes) > 0:
		return newError(ErrNotIDToken, "the token carries scp: it is an access token, not an ID token", nil)
	case c.IssuedAt.IsZero():
		return newError(ErrMalformedToken, "the ID token has no iat claim, which OpenID Connect requires", nil)
	case c.Subject == "":
		return newError(ErrNotIDToken, "the token has no sub claim, which every ID token carries", nil)
	}
	forApp := false
	for _, aud := range c.Audience {
		if aud == a.s.ClientID || strings.EqualFold(aud, a.s.ClientID) && isGUID(aud) {
			forApp = true
		}
	}
	switch {
	case !forApp:
		return newError(ErrInvalidAudience, "the ID token is not for this app (aud)", nil)
	case !c.HasIDTokenClaims() || c.Nonce == "":
		return newError(ErrNotIDToken, "the token has no nonce: it is not an ID token of a sign-in by this app", nil)
	case len(c.Audience) > 1 && c.ClientAppID == "":
		return newError(ErrInvalidAudience, "an ID token for several audiences must name this app in azp", nil)
	case c.ClientAppID != "" && !strings.EqualFold(c.ClientAppID, a.s.ClientID):
		return newError(ErrInvalidAudience, "the ID token was issued to another app (azp)", nil)
	case subtle.ConstantTimeCompare([]byte(c.Nonce), []byte(nonce)) != 1:
		return newError(ErrInvalidNonce, "the ID token's nonce is not the one this sign-in sent", nil)
	}
	return nil
}
