package middleware

import (
	"context"
	"crypto/subtle"
	"strings"
	"time"

	"github.com/entragate/entragate/claims"
)

// IDTokenConfig configures an IDTokenVerifier: the web app whose sign-ins
// it checks.
type IDTokenConfig struct {
	// ClientID is the web app's application (client) ID: the audience of
	// its ID tokens. Required.
	ClientID string
	// Leeway is the allowed clock skew, as Config.Leeway.
	Leeway time.Duration
	// DenyGuestUsers refuses guest (B2B) users, as Config.DenyGuestUsers.
	DenyGuestUsers bool
	// Observer's Decision is called for each ID token checked (default:
	// the Provider's); Load and Admission here are a configuration error,
	// as in APIConfig.
	Observer Observer
}

// IDTokenVerifier checks the OpenID Connect ID tokens a web app receives
// when it signs a user in, on its Provider's authorities and keys. It is
// safe for concurrent use, and cheap: build it from the Provider the
// app's APIs already use, so that one process loads each document once.
type IDTokenVerifier struct {
	p        *Provider
	clientID string
	leeway   time.Duration
	guests   bool // refused
	observer Observer
}

// NewIDTokenVerifier returns a verifier of cfg.ClientID's ID tokens.
func (p *Provider) NewIDTokenVerifier(cfg IDTokenConfig) (*IDTokenVerifier, error) {
	clientID, err := checkClientID(cfg.ClientID)
	if err != nil {
		return nil, err
	}
	leeway, err := checkLeeway(cfg.Leeway)
	if err != nil {
		return nil, err
	}
	if err := checkVerifierObserver("IDTokenConfig", cfg.Observer); err != nil {
		return nil, err
	}
	return &IDTokenVerifier{p: p, clientID: clientID, leeway: leeway, guests: cfg.DenyGuestUsers, observer: p.observerFor(cfg.Observer)}, nil
}

// Verify checks an ID token and returns its claims (Name,
// PreferredUsername, Email, ObjectID, TenantID, SessionID, AuthTime,
// LoginHint...), the caller's own.
//
// The token is checked on the same authorities, keys and time rules as
// access tokens: the RS256 signature against the issuer's published keys,
// exp, nbf and iat with the leeway, iss and tid (single tenant, or a
// multi-tenant template filled from tid and the tenant's admission), and
// the version. Beyond that, an ID token must be addressed to the app (aud
// is exactly ClientID; azp, when present, too), carry the nonce the app
// sent with its authorization request (nonce must not be empty), and not
// be an access token (no scp). An ID token never passes an Authenticator,
// and an access token never passes Verify.
//
// Verify the ID token of a sign-in, once, when the app receives it: the
// ID tokens Entra returns later, with refreshed tokens, carry no nonce and
// are refused. OpenID Connect requires iat and sub; a token without them
// is refused too. Every error is an *Error; the reasons specific to ID
// tokens are ErrInvalidNonce and ErrNotIDToken.
func (v *IDTokenVerifier) Verify(ctx context.Context, rawIDToken, nonce string) (*claims.Claims, error) {
	d := decision{token: "id"}
	observed := v.observer.Decision != nil
	if observed {
		d.start = time.Now()
	}
	c, e := v.verify(ctx, rawIDToken, nonce, &d)
	if observed {
		reportDecision(ctx, &v.observer, &d, e, time.Now())
	}
	if e != nil {
		return nil, e
	}
	return c, nil
}

func (v *IDTokenVerifier) verify(ctx context.Context, raw, nonce string, d *decision) (*claims.Claims, *Error) {
	if v.p.closed() {
		return nil, closedError()
	}
	if len(raw) > DefaultMaxTokenSize {
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
	d.claims = c
	if e := v.checkIDClaims(c, nonce); e != nil {
		return nil, e
	}
	ver, e := v.p.verify(ctx, tok, c)
	d.src, d.verified = ver.src, e == nil
	if e != nil {
		return nil, e
	}
	if v.guests && ver.src.auth.shape.guestsApply() && c.IsGuest() {
		return nil, newError(ErrGuestUser, "guest users of the tenant are not allowed to sign in to this app", nil)
	}
	return c, nil
}

// checkIDClaims applies the rules of OpenID Connect Core §3.1.3.7 that need
// no keys, and tells ID tokens from access tokens.
func (v *IDTokenVerifier) checkIDClaims(c *claims.Claims, nonce string) *Error {
	if e := checkTimes(c, v.p.s.now(), v.leeway); e != nil {
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
		if aud == v.clientID || strings.EqualFold(aud, v.clientID) && isGUID(aud) {
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
	case c.ClientAppID != "" && !strings.EqualFold(c.ClientAppID, v.clientID):
		return newError(ErrInvalidAudience, "the ID token was issued to another app (azp)", nil)
	case subtle.ConstantTimeCompare([]byte(c.Nonce), []byte(nonce)) != 1:
		return newError(ErrInvalidNonce, "the ID token's nonce is not the one this sign-in sent", nil)
	}
	return nil
}
