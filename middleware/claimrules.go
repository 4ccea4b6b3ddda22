package middleware

import (
	"crypto/rsa"
	"errors"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"

	"github.com/entragate/entragate/claims"
)

// graphAudiences are Microsoft Graph's application ID and its hosts in
// each cloud: a token with one of these audiences is for Graph, sent to the
// wrong API. They are refused with ErrGraphToken.
var graphAudiences = map[string]bool{
	"00000003-0000-0000-c000-000000000000":    true,
	"https://graph.microsoft.com":             true,
	"https://graph.microsoft.us":              true,
	"https://dod-graph.microsoft.us":          true,
	"https://microsoftgraph.chinacloudapi.cn": true,
	"https://canary.graph.microsoft.com":      true,
}

// parseToken splits a compact JWS, checks its header and decodes its
// claims, once each.
func parseToken(raw string) (jws, *claims.Claims, *Error) {
	tok, e := splitJWS(raw)
	if e != nil {
		return tok, nil, e
	}
	payload, e := tok.decodePayload()
	if e != nil {
		return tok, nil, e
	}
	c, err := claims.Parse(payload)
	if err != nil {
		return tok, nil, malformed("the token's claims are malformed", err)
	}
	return tok, c, nil
}

// malformed describes a header or payload claims refused, naming the
// member without echoing its value.
func malformed(what string, err error) *Error {
	var pe *claims.ParseError
	if !errors.As(err, &pe) {
		return newError(ErrMalformedToken, what, err)
	}
	switch {
	case pe.Name == "":
		what += ": " + pe.Problem
	case pe.Header:
		what += ": member " + `"` + shortName(pe.Name) + `" ` + pe.Problem
	default:
		what += ": claim " + `"` + shortName(pe.Name) + `" ` + pe.Problem
	}
	return newError(ErrMalformedToken, what, err)
}

// shortName cuts a claim name the caller chose to 40 bytes, so that a
// refusal's description (and its WWW-Authenticate header) stays short
// whatever the token holds.
func shortName(name string) string {
	const limit = 40
	if len(name) <= limit {
		return name
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(name[cut]) {
		cut--
	}
	return name[:cut] + "..."
}

// checkClaims applies the rules that need no keys or metadata. It runs on
// a token's first sight; a cached token passed it, and its only
// time-dependent part, checkTimes, runs again on every hit.
func (s *apiSettings) checkClaims(c *claims.Claims, now time.Time) *Error {
	for _, aud := range c.Audience {
		if graphAudiences[strings.ToLower(strings.TrimSuffix(aud, "/"))] {
			return newError(ErrGraphToken, "the token is for Microsoft Graph, not this API; request a token for this API's scope (api://<client-id>/.default or a named scope)", nil)
		}
	}
	if e := checkTimes(c, now, s.leeway); e != nil {
		return e
	}
	if !s.audienceAccepted(c.Audience) {
		return newError(ErrInvalidAudience, "the token is not for this API (aud)", nil)
	}
	// Entra puts a user's app roles into ID tokens too, and when an app and
	// its API share one registration the ID token's audience is the API:
	// scp/roles cannot tell them apart, these claims can.
	if c.HasIDTokenClaims() {
		return newError(ErrIDToken, "the token is an ID token (it carries nonce, at_hash or c_hash); send an access token for this API", nil)
	}
	if c.ClientAppID == "" {
		return newError(ErrIDToken, "the token names no client application (azp in v2.0, appid in v1.0 tokens), as every Entra access token does: it is an ID token or not an access token; send an access token for this API", nil)
	}
	if !s.allowNoScopes && len(c.Scopes) == 0 && len(c.Roles) == 0 {
		return newError(ErrNotAccessToken, "the token has neither scp nor roles: no permission of this API was granted to the caller", nil)
	}
	return nil
}

func (s *apiSettings) audienceAccepted(auds []string) bool {
	for _, aud := range auds {
		if _, ok := s.audiences[aud]; ok {
			return true
		}
	}
	return false
}

// checkTimes applies exp, nbf and iat with the leeway, the way golang-jwt's
// validator and Microsoft.IdentityModel do.
func checkTimes(c *claims.Claims, now time.Time, leeway time.Duration) *Error {
	switch {
	case c.ExpiresAt.IsZero():
		return newError(ErrMalformedToken, "the token has no exp claim", nil)
	case !c.NotBefore.IsZero() && c.NotBefore.After(c.ExpiresAt):
		// Never valid, whatever the clock skew (IDX10224).
		return newError(ErrMalformedToken, "the token's nbf is after its exp: it is never valid", nil)
	case !c.IssuedAt.IsZero() && c.IssuedAt.After(c.ExpiresAt):
		return newError(ErrInvalidIssuedAt, "the token is issued after it expires (iat > exp)", nil)
	case !now.Before(c.ExpiresAt.Add(leeway)):
		return newError(ErrTokenExpired, "the token is expired", nil)
	case !c.NotBefore.IsZero() && now.Before(c.NotBefore.Add(-leeway)):
		return newError(ErrTokenNotYetValid, "the token is not valid yet (nbf)", nil)
	case !c.IssuedAt.IsZero() && now.Before(c.IssuedAt.Add(-leeway)):
		return newError(ErrInvalidIssuedAt, "the token is issued in the future (iat)", nil)
	}
	return nil
}

// validityWindow is when checkTimes accepts c, as Unix nanoseconds: from
// the later of nbf and iat, less the leeway, until exp plus the leeway.
func validityWindow(c *claims.Claims, leeway time.Duration) (from, until int64) {
	from = math.MinInt64
	for _, t := range []time.Time{c.NotBefore, c.IssuedAt} {
		if !t.IsZero() {
			from = max(from, t.Add(-leeway).UnixNano())
		}
	}
	return from, c.ExpiresAt.Add(leeway).UnixNano()
}

// verifySignature checks the RS256 signature with golang-jwt.
func verifySignature(tok jws, pub *rsa.PublicKey) *Error {
	sig, err := b64.DecodeString(tok.signature)
	if err != nil {
		return newError(ErrMalformedToken, "the token signature is not base64url without padding", nil)
	}
	if err := jwt.SigningMethodRS256.Verify(tok.signingInput, sig, pub); err != nil {
		return newError(ErrInvalidSignature, "the token signature is invalid", err)
	}
	return nil
}
