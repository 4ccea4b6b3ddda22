package middleware

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/entragate/entragate/claims"
)

// Authenticator validates Entra ID access tokens for one API. It is safe for
// concurrent use. Create it with New and stop it with Close.
type Authenticator struct {
	s         *settings
	keys      *keyManager
	parser    *jwt.Parser
	validator *jwt.Validator
	state     *requestState
	closeOnce sync.Once
}

// New checks cfg, starts loading the tenant's metadata and signing keys, and
// returns an Authenticator. It waits for that first load until it finishes,
// FetchTimeout passes, or ctx ends; if Entra cannot be reached, New still
// succeeds (a service must not crash-loop on a network blip): keys keep
// loading in the background and requests with a token get 503 until they
// arrive. Only an invalid Config is an error.
func New(ctx context.Context, cfg Config) (*Authenticator, error) {
	s, err := newSettings(cfg)
	if err != nil {
		return nil, err
	}
	a := &Authenticator{
		s:    s,
		keys: newKeyManager(s),
		// RS256 only: Entra signs with it, and pinning it stops alg=none,
		// HS256-with-the-public-key and PS256 substitutions (RFC 8725 §3.1).
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{"RS256"}),
			jwt.WithoutClaimsValidation(), // done before the signature, below
			jwt.WithStrictDecoding(),
		),
		state: &requestState{handler: s.ErrorHandler, realm: s.Realm, logger: s.logger},
	}
	opts := []jwt.ParserOption{
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithAudience(s.audiences...),
		jwt.WithTimeFunc(s.now),
	}
	if s.leeway > 0 {
		opts = append(opts, jwt.WithLeeway(s.leeway))
	}
	a.validator = jwt.NewValidator(opts...)

	first := a.keys.start()
	timer := time.NewTimer(s.FetchTimeout)
	defer timer.Stop()
	select {
	case <-first.done:
	case <-timer.C:
	case <-ctx.Done():
	}
	return a, nil
}

// Close stops background key refreshes and waits for them to end. Requests
// still validating get ErrClosed. Close is idempotent.
func (a *Authenticator) Close() error {
	a.closeOnce.Do(a.keys.close)
	return nil
}

// Stats reports the state of the signing keys, e.g. for a readiness probe.
func (a *Authenticator) Stats() Stats { return a.keys.stats() }

// Ready reports whether signing keys are loaded, so tokens can be checked.
func (a *Authenticator) Ready() bool { return a.keys.snap.Load() != nil }

// Validate checks a raw access token (without the "Bearer " prefix), as
// RequireAuth does for HTTP requests, and returns its claims. Use it from a
// gRPC interceptor, a websocket upgrade or a message consumer.
//
// Config.Scopes and Config.Roles apply. Every error is an *Error wrapping one
// of the Err* reasons.
func (a *Authenticator) Validate(ctx context.Context, rawToken string) (*claims.Claims, error) {
	c, err := a.validate(ctx, rawToken)
	if err != nil {
		// validate hands back the unverified claims for logging, and a nil
		// *Error must not become a non-nil error interface.
		return nil, err
	}
	return c, nil
}

// tokenClaims adapts claims.Claims to golang-jwt's Claims interface.
type tokenClaims struct{ c *claims.Claims }

func (t *tokenClaims) UnmarshalJSON(b []byte) error {
	c, err := claims.Parse(b)
	if err != nil {
		return err
	}
	t.c = c
	return nil
}

func numericDate(t time.Time) (*jwt.NumericDate, error) {
	if t.IsZero() {
		return nil, nil
	}
	return jwt.NewNumericDate(t), nil
}

func (t *tokenClaims) GetExpirationTime() (*jwt.NumericDate, error) {
	return numericDate(t.c.ExpiresAt)
}
func (t *tokenClaims) GetIssuedAt() (*jwt.NumericDate, error)  { return numericDate(t.c.IssuedAt) }
func (t *tokenClaims) GetNotBefore() (*jwt.NumericDate, error) { return numericDate(t.c.NotBefore) }
func (t *tokenClaims) GetIssuer() (string, error)              { return t.c.Issuer, nil }
func (t *tokenClaims) GetSubject() (string, error)             { return t.c.Subject, nil }
func (t *tokenClaims) GetAudience() (jwt.ClaimStrings, error)  { return t.c.Audience, nil }

// validate runs every check on a raw token. The order is deliberate: cheap
// structural and claim checks first, so that junk never costs an RSA
// verification or a key fetch; the signature next; authorization (403) last,
// so that only a genuine token can learn it lacks a permission.
func (a *Authenticator) validate(ctx context.Context, raw string) (*claims.Claims, *Error) {
	if a.keys.ctx.Err() != nil {
		return nil, a.keys.unavailable(ErrClosed)
	}
	if len(raw) > a.s.MaxTokenSize {
		return nil, newError(ErrTokenTooLarge, "the token exceeds the accepted size", nil)
	}
	if e := checkHeader(raw); e != nil {
		return nil, e
	}
	tc := &tokenClaims{}
	var found *Error
	_, err := a.parser.ParseWithClaims(raw, tc, func(t *jwt.Token) (any, error) {
		if tc.c == nil {
			// encoding/json skips UnmarshalJSON for a null payload.
			found = newError(ErrMalformedToken, "the token's claims are not a JSON object", nil)
			return nil, found
		}
		key, e := a.verificationKey(ctx, t, tc.c)
		if e != nil {
			found = e
			return nil, e
		}
		return key, nil
	})
	if found != nil {
		return tc.c, found
	}
	if err != nil {
		return tc.c, mapParseError(err)
	}
	if e := a.checkRequired(tc.c); e != nil {
		return tc.c, e
	}
	return tc.c, nil
}

// verificationKey runs inside golang-jwt's parse, after the header and the
// claims JSON are decoded and before the signature is checked.
func (a *Authenticator) verificationKey(ctx context.Context, t *jwt.Token, c *claims.Claims) (any, *Error) {
	if e := a.checkClaims(c); e != nil {
		return nil, e
	}
	snap, err := a.keys.current(ctx)
	if err != nil {
		return nil, a.keys.unavailable(err)
	}
	if e := a.checkIssuer(snap, c); e != nil {
		return nil, e
	}
	key, err := a.keys.verificationKey(ctx, snap, t, c.Issuer, c.TenantID)
	if err != nil {
		return nil, asError(err)
	}
	return key, nil
}

// checkClaims applies the rules that need no keys or metadata.
func (a *Authenticator) checkClaims(c *claims.Claims) *Error {
	if isGraphAudience(c.Audience) {
		return newError(ErrGraphToken, "the token is for Microsoft Graph, not this API; request a token for this API's scope (api://<client-id>/.default or a named scope)", nil)
	}
	if c.ExpiresAt.IsZero() {
		return newError(ErrMalformedToken, "the token has no exp claim", nil)
	}
	if err := a.validator.Validate(&tokenClaims{c}); err != nil {
		switch {
		case errors.Is(err, jwt.ErrTokenExpired):
			return newError(ErrTokenExpired, "the token is expired", nil)
		case errors.Is(err, jwt.ErrTokenNotValidYet):
			return newError(ErrTokenNotYetValid, "the token is not valid yet (nbf)", nil)
		case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
			return newError(ErrInvalidIssuedAt, "the token is issued in the future (iat)", nil)
		case errors.Is(err, jwt.ErrTokenInvalidAudience), errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
			return newError(ErrInvalidAudience, "the token is not for this API (aud)", nil)
		}
		return newError(ErrMalformedToken, "the token's claims are invalid", err)
	}
	if !c.IssuedAt.IsZero() && c.IssuedAt.After(c.ExpiresAt) {
		return newError(ErrInvalidIssuedAt, "the token is issued after it expires (iat > exp)", nil)
	}
	if !a.s.AllowTokensWithoutScopesOrRoles && len(c.Scopes) == 0 && len(c.Roles) == 0 {
		return newError(ErrNotAccessToken, "the token has neither scp nor roles: it is not an access token for this API, or no permission was granted", nil)
	}
	return nil
}

func isGraphAudience(aud []string) bool {
	for _, v := range aud {
		v = strings.TrimRight(strings.ToLower(v), "/")
		if v == graphAppID || v == graphAppURI {
			return true
		}
	}
	return false
}

// checkIssuer accepts iss only when it is one of the tenant's issuers, the
// token version matches that issuer, and tid is the configured tenant.
func (a *Authenticator) checkIssuer(snap *keySnapshot, c *claims.Claims) *Error {
	if !strings.EqualFold(c.TenantID, a.s.TenantID) {
		if c.TenantID == "" {
			return newError(ErrInvalidIssuer, "the token has no tid claim", nil)
		}
		return newError(ErrInvalidIssuer, "the token was issued by another tenant", nil)
	}
	var rule *issuerRule
	for i := range snap.issuers {
		if snap.issuers[i].match(c.Issuer, c.TenantID) {
			rule = &snap.issuers[i]
			break
		}
	}
	if rule == nil {
		return newError(ErrInvalidIssuer, "the token's issuer is not this API's tenant", nil)
	}
	// Entra always sends ver; when it is absent the issuer decides the
	// version, as Microsoft.IdentityModel does.
	version := c.Version
	if version == "" {
		version = rule.version
	}
	switch {
	case version != "1.0" && version != "2.0":
		return newError(ErrInvalidVersion, "the token's ver claim must be 1.0 or 2.0", nil)
	case version != rule.version:
		return newError(ErrInvalidVersion, "the token's version does not match its issuer", nil)
	case version == "1.0" && a.s.TokenVersions&TokenV1 == 0,
		version == "2.0" && a.s.TokenVersions&TokenV2 == 0:
		return newError(ErrInvalidVersion, "this API does not accept v"+version+" tokens", nil)
	}
	return nil
}

// checkRequired applies Config.Scopes and Config.Roles.
func (a *Authenticator) checkRequired(c *claims.Claims) *Error {
	if len(a.s.Scopes) == 0 && len(a.s.Roles) == 0 {
		return nil
	}
	return authorizeAny(c, a.s.Scopes, a.s.Roles)
}

// mapParseError translates golang-jwt's errors into ours.
func mapParseError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	switch {
	case errors.Is(err, claims.ErrMalformed):
		desc := "the token's claims are malformed"
		if _, detail, ok := strings.Cut(err.Error(), claims.ErrMalformed.Error()+": "); ok {
			desc += ": " + detail
		}
		return newError(ErrMalformedToken, desc, err)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return newError(ErrInvalidSignature, "the token signature is invalid", err)
	case errors.Is(err, jwt.ErrTokenMalformed):
		return newError(ErrMalformedToken, "the token is not a well-formed JWT", err)
	}
	return newError(ErrMalformedToken, "the token could not be verified", err)
}

// Limits on the JOSE header. Entra's headers are under 200 bytes.
const (
	maxHeaderBytes = 2048
	maxKeyIDLength = 256
)

// checkHeader decodes and checks the JOSE header before golang-jwt does, to
// give precise answers and to apply rules golang-jwt lacks: duplicate
// member names, crit (RFC 7515 §4.1.11) and Graph's nonce.
//
// Key-locating members (jku, x5u, jwk, x5c) are never read: keys come only
// from the tenant's published key set (RFC 8725 §3.10).
func checkHeader(raw string) *Error {
	first := strings.IndexByte(raw, '.')
	if first < 0 {
		return newError(ErrMalformedToken, "the token is not a JWT (expected three dot-separated parts)", nil)
	}
	switch strings.Count(raw, ".") {
	case 2:
	case 4:
		return newError(ErrMalformedToken, "encrypted tokens (JWE) are not accepted", nil)
	default:
		return newError(ErrMalformedToken, "the token is not a JWT (expected three dot-separated parts)", nil)
	}
	seg := raw[:first]
	if base64.RawURLEncoding.DecodedLen(len(seg)) > maxHeaderBytes {
		return newError(ErrMalformedToken, "the token header is too large", nil)
	}
	hb, err := base64.RawURLEncoding.Strict().DecodeString(seg)
	if err != nil {
		return newError(ErrMalformedToken, "the token header is not base64url without padding", nil)
	}
	h, err := decodeHeader(hb)
	if err != nil {
		return newError(ErrMalformedToken, "the token header is not a valid JSON object: "+err.Error(), nil)
	}
	switch {
	case h.nonce:
		return newError(ErrGraphToken, "the token carries a nonce header: it is a Microsoft Graph token, not a token for this API", nil)
	case h.alg != "RS256":
		return newError(ErrUnsupportedAlgorithm, "only RS256-signed tokens are accepted", nil)
	case h.crit:
		return newError(ErrCriticalHeader, "the token header lists critical extensions (crit), which are not supported", nil)
	case h.kid == "":
		return newError(ErrMissingKeyID, "the token header has no kid", nil)
	case len(h.kid) > maxKeyIDLength:
		return newError(ErrMalformedToken, "the token's kid is too long", nil)
	}
	return nil
}

type joseHeader struct {
	alg, kid    string
	crit, nonce bool
}

var errDuplicateMember = errors.New("duplicate member name")

// decodeHeader reads the header object member by member, refusing duplicate
// names (RFC 7515 §4: a JWS with duplicate header names may be rejected) and
// non-string alg or kid.
func decodeHeader(b []byte) (joseHeader, error) {
	var h joseHeader
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return h, errors.New("not an object")
	}
	seen := make(map[string]struct{}, 8)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return h, errors.New("invalid JSON")
		}
		name, _ := tok.(string)
		if _, dup := seen[name]; dup {
			return h, errDuplicateMember
		}
		seen[name] = struct{}{}
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return h, errors.New("invalid JSON")
		}
		switch name {
		case "alg", "kid":
			var s string
			if err := json.Unmarshal(value, &s); err != nil {
				return h, errors.New(name + " must be a string")
			}
			if name == "alg" {
				h.alg = s
			} else {
				h.kid = s
			}
		case "crit":
			h.crit = true
		case "nonce":
			h.nonce = true
		}
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return h, errors.New("invalid JSON")
	}
	if _, err := dec.Token(); err != io.EOF {
		return h, errors.New("trailing data after the object")
	}
	return h, nil
}
