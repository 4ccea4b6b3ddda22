package middleware

import (
	"context"
	"crypto/rsa"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/entragate/entragate/claims"
)

// Authenticator validates Entra ID access tokens for one API. It is safe for
// concurrent use. Create it with New and stop it with Close.
type Authenticator struct {
	s           *settings
	ctx         context.Context
	cancel      context.CancelFunc
	wg          sync.WaitGroup
	authorities []*authority
	router      *router
	cache       *tokenCache
	state       *requestState
	closeOnce   sync.Once
	// generation counts successful document loads; cache entries checked
	// against an older generation are checked again.
	generation atomic.Uint64
}

// New checks cfg, starts loading the metadata and signing keys of every
// authority, and returns an Authenticator. It waits for those first loads
// until they finish, about twice FetchTimeout passes (a load is a metadata
// request, then a key-set request), or ctx ends. If Entra cannot be
// reached, New still succeeds (a service must not crash-loop on a network
// blip): keys keep loading in the background and requests with a token get
// 503 until they arrive. Only an invalid Config is an error.
func New(ctx context.Context, cfg Config) (*Authenticator, error) {
	s, err := newSettings(cfg)
	if err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	a := &Authenticator{
		s: s, ctx: runCtx, cancel: cancel,
		state: &requestState{handler: s.ErrorHandler, realm: s.Realm, logger: s.logger},
	}
	appID := ""
	if s.AppSpecificSigningKeys {
		appID = s.ClientID
	}
	for _, auth := range s.authorities {
		ra := &authority{Authority: auth}
		if auth.kind == kindEntraMultiTenant {
			ra.admit = newAdmitter(runCtx, auth, s.now)
		}
		specAppID := appID
		if auth.kind == kindB2C {
			specAppID = ""
		}
		for _, spec := range auth.sources(s.TokenVersions, specAppID) {
			if auth.kind == kindEntraMultiTenant && spec.version == claims.Version1 {
				// Entra serves v1 metadata for common only; its issuer
				// template is the same for organizations.
				spec.url = strings.Replace(spec.url, "/"+Organizations+"/", "/"+Common+"/", 1)
			}
			ra.sources = append(ra.sources, newSource(runCtx, s, ra, spec, s.issuersFor(spec.version), func() { a.keysChanged() }))
		}
		a.authorities = append(a.authorities, ra)
	}
	a.router = newRouter(a.authorities)
	if s.cacheSize > 0 {
		a.cache = newTokenCache(s.cacheSize, s.cacheSize*tokenCacheEntryCost)
	}

	var firsts []*generation
	for _, src := range a.router.sources {
		firsts = append(firsts, src.firstLoad())
		a.wg.Add(1)
		go src.run(&a.wg)
	}
	timer := time.NewTimer(2 * s.FetchTimeout)
	defer timer.Stop()
	for _, g := range firsts {
		select {
		case <-g.done:
		case <-timer.C:
			return a, nil
		case <-ctx.Done():
			return a, nil
		}
	}
	return a, nil
}

// issuersFor returns the Config.Issuers that replace the issuer of a
// metadata document announcing version.
func (s *settings) issuersFor(version string) []string {
	var out []string
	for _, iss := range s.Issuers {
		if issuerVersion(iss) == version {
			out = append(out, iss)
		}
	}
	if len(s.Issuers) > 0 && len(out) == 0 {
		// Config.Issuers names no issuer of this version: none is accepted.
		return []string{}
	}
	return out
}

// issuerVersion infers the token version an issuer URL belongs to, the way
// Microsoft.IdentityModel picks v1 or v2 metadata: v2 issuers end in /v2.0.
func issuerVersion(iss string) string {
	if strings.HasSuffix(iss, "/v2.0") || strings.HasSuffix(iss, "/v2.0/") {
		return claims.Version2
	}
	return claims.Version1
}

// keysChanged runs after any source loads: the issuer index is rebuilt, and
// cached tokens signed by keys that are no longer published stop counting.
func (a *Authenticator) keysChanged() {
	a.router.rebuild()
	a.generation.Add(1)
}

// Close stops background key refreshes and waits for them to end. Requests
// still validating get ErrClosed. Close is idempotent.
func (a *Authenticator) Close() error {
	a.closeOnce.Do(func() {
		a.cancel()
		a.wg.Wait()
		if a.s.ownClient {
			a.s.client.CloseIdleConnections()
		}
	})
	return nil
}

// Ready reports whether the signing keys of every authority (every token
// version, every B2C policy) have been loaded, so that every token this API
// accepts can be checked. Keys, once loaded, are kept through outages.
// Stats tells which source is missing and why.
func (a *Authenticator) Ready() bool {
	for _, src := range a.router.sources {
		if src.state.Load() == nil {
			return false
		}
	}
	return true
}

// Stats reports the state of the signing keys and of the token cache, e.g.
// for a readiness probe or metrics.
type Stats struct {
	// KeysLoaded is true when every source has loaded keys (see Ready).
	KeysLoaded bool
	// KeyIDs are the key IDs currently trusted, over all sources.
	KeyIDs []string
	// Fetches counts metadata and key-set requests made; Failures counts
	// load attempts that failed.
	Fetches, Failures int64
	// LastError is the most recent load error of any source that has not
	// loaded successfully since, and LastErrorAt when it happened.
	LastError   error
	LastErrorAt time.Time
	// Sources details each metadata document: which authority, version or
	// policy it serves, whether it is loaded, and its last error.
	Sources []SourceStats
	// Cache counts the verified-token cache's work.
	Cache CacheStats
}

// Stats reports the state of the signing keys and of the token cache.
func (a *Authenticator) Stats() Stats {
	st := Stats{KeysLoaded: true}
	for _, src := range a.router.sources {
		ss := src.stats()
		st.Sources = append(st.Sources, ss)
		st.KeysLoaded = st.KeysLoaded && ss.Ready
		st.Fetches += ss.Fetches
		st.Failures += ss.Failures
		for _, kid := range ss.KeyIDs {
			if !slices.Contains(st.KeyIDs, kid) {
				st.KeyIDs = append(st.KeyIDs, kid)
			}
		}
		if ss.LastError != nil && ss.LastErrorAt.After(st.LastErrorAt) {
			st.LastError, st.LastErrorAt = ss.LastError, ss.LastErrorAt
		}
	}
	if a.cache != nil {
		st.Cache = a.cache.stats()
	}
	return st
}

// Validate checks a raw access token (without the "Bearer " prefix), as
// RequireAuth does for HTTP requests, and returns its claims. Use it from a
// gRPC interceptor, a websocket upgrade or a message consumer. The claims
// are the caller's own copy: changing them changes nothing else.
//
// Config.Scopes and Config.Roles apply. Every error is an *Error wrapping one
// of the Err* reasons; its Description (and Status, Code) may be sent to
// the caller, its Error() text is for logs.
func (a *Authenticator) Validate(ctx context.Context, rawToken string) (*claims.Claims, error) {
	if scheme, _, ok := strings.Cut(rawToken, " "); ok && strings.EqualFold(scheme, "Bearer") {
		return nil, newError(ErrMalformedToken, "pass the token without the Bearer scheme: Validate takes the token itself, not the Authorization header value", nil)
	}
	c, err := a.validate(ctx, rawToken, false)
	if err != nil {
		// validate hands back the unverified claims for logging, and a nil
		// *Error must not become a non-nil error interface.
		return nil, err
	}
	return c.Clone(), nil
}

// validate runs every check on a raw token. The order is deliberate: a
// token seen and verified before is answered from the cache; otherwise
// cheap structural and claim checks come first, so that junk never costs an
// RSA verification or a key fetch; the signature next; then the tenant's
// admission, which may ask the API's own database, so only for genuine
// tokens; authorization (403) last, so that only a genuine token can learn
// it lacks a permission.
//
// fromHeader says raw comes from an Authorization header, where a space or
// comma means the request holds several tokens (400), not a bad token.
func (a *Authenticator) validate(ctx context.Context, raw string, fromHeader bool) (*claims.Claims, *Error) {
	if a.ctx.Err() != nil {
		return nil, closedError()
	}
	if len(raw) > a.s.MaxTokenSize {
		return nil, newError(ErrTokenTooLarge, "the token exceeds the accepted size", nil)
	}
	if a.cache != nil {
		if c, e, hit := a.fromCache(ctx, raw); hit {
			return c, e
		}
	}
	if fromHeader {
		if e := checkOneToken(raw); e != nil {
			return nil, e
		}
	}
	tok, c, e := parseToken(raw)
	if e != nil {
		return c, e
	}
	if e := a.checkClaims(c, a.s.now()); e != nil {
		return c, e
	}
	// Read before the documents are: a load finishing during this
	// validation makes the entry's first hit check it again.
	generation := a.generation.Load()
	v, e := a.verifyIssuer(ctx, tok, c)
	if e != nil {
		return c, e
	}
	if a.cache != nil {
		ent := &cacheEntry{claims: c, src: v.src, kid: tok.kid, pub: v.pub}
		ent.validFrom, ent.validUntil = a.validityWindow(c)
		ent.generation.Store(generation)
		ent.admittedUntil.Store(unixNano(v.admittedUntil))
		a.cache.add(raw, tok.signature, ent)
	}
	return c, a.authorize(v.src, c)
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
		return tok, nil, malformedClaims(err)
	}
	return tok, c, nil
}

// verified is what verifyIssuer learned of a token.
type verified struct {
	src           *source
	state         *sourceState
	pub           *rsa.PublicKey
	admittedUntil time.Time
}

// verifyIssuer applies what access and ID tokens share once their own
// claims passed: the version, the issuer and tenant (routing the token to
// the source that issued it), the key, the signature, then the tenant's
// admission, which may ask the API's own database, so only for genuine
// tokens.
func (a *Authenticator) verifyIssuer(ctx context.Context, tok jws, c *claims.Claims) (verified, *Error) {
	var v verified
	version, e := a.checkVersion(c)
	if e != nil {
		return v, e
	}
	src, st, e := a.router.route(ctx, c, version)
	if e != nil {
		return v, e
	}
	pub, st, e := src.verificationKey(ctx, st, tok.kid, c.Issuer, tenantOf(st, c))
	if e != nil {
		return v, e
	}
	if e := verifySignature(tok, pub); e != nil {
		return v, e
	}
	admittedUntil, e := src.auth.admitTenant(ctx, tenantOf(st, c))
	if e != nil {
		return v, e
	}
	return verified{src: src, state: st, pub: pub, admittedUntil: admittedUntil}, nil
}

// checkClaims applies the rules that need no keys or metadata, on every
// request, cached or not. now is the configured clock.
func (a *Authenticator) checkClaims(c *claims.Claims, now time.Time) *Error {
	for _, aud := range c.Audience {
		if graphAudiences[strings.ToLower(strings.TrimSuffix(aud, "/"))] {
			return newError(ErrGraphToken, "the token is for Microsoft Graph, not this API; request a token for this API's scope (api://<client-id>/.default or a named scope)", nil)
		}
	}
	if e := a.checkTimes(c, now); e != nil {
		return e
	}
	if !a.audienceAccepted(c.Audience) {
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
	if !a.s.AllowTokensWithoutScopesOrRoles && len(c.Scopes) == 0 && len(c.Roles) == 0 {
		return newError(ErrNotAccessToken, "the token has neither scp nor roles: no permission of this API was granted to the caller", nil)
	}
	return nil
}

// checkTimes applies exp, nbf and iat with the leeway, the way golang-jwt's
// validator and Microsoft.IdentityModel do.
func (a *Authenticator) checkTimes(c *claims.Claims, now time.Time) *Error {
	leeway := a.s.leeway
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
func (a *Authenticator) validityWindow(c *claims.Claims) (from, until int64) {
	from = math.MinInt64
	for _, t := range []time.Time{c.NotBefore, c.IssuedAt} {
		if !t.IsZero() {
			from = max(from, t.Add(-a.s.leeway).UnixNano())
		}
	}
	return from, c.ExpiresAt.Add(a.s.leeway).UnixNano()
}

func (a *Authenticator) audienceAccepted(auds []string) bool {
	for _, aud := range auds {
		if _, ok := a.s.audiences[aud]; ok {
			return true
		}
	}
	return false
}

// checkVersion reads the token's version (ver; the issuer's form when ver
// is absent, as Microsoft.IdentityModel does) and refuses versions the API
// does not accept, before its issuer is looked at.
func (a *Authenticator) checkVersion(c *claims.Claims) (string, *Error) {
	version := c.Version
	if version == "" {
		version = issuerVersion(c.Issuer)
	}
	switch version {
	case claims.Version1, claims.Version2:
	default:
		return "", newError(ErrInvalidVersion, "the token's ver claim must be 1.0 or 2.0", nil)
	}
	if len(a.router.byVersion[version]) == 0 {
		return "", newError(ErrInvalidVersion, "this API does not accept v"+version+" tokens", nil)
	}
	return version, nil
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

// admitTenant applies a multi-tenant authority's admission; other
// authorities admit their one tenant.
func (a *authority) admitTenant(ctx context.Context, tid string) (time.Time, *Error) {
	if a.admit == nil {
		return time.Time{}, nil
	}
	return a.admit.admit(ctx, tid)
}

// authorize applies the rules that refuse a genuine token with 403: guest
// users, and Config.Scopes and Config.Roles.
func (a *Authenticator) authorize(src *source, c *claims.Claims) *Error {
	if a.s.DenyGuestUsers && src.auth.kind != kindB2C && c.IsGuest() {
		return newError(ErrGuestUser, "guest users of the tenant are not allowed to call this API", nil)
	}
	if len(a.s.Scopes) == 0 && len(a.s.Roles) == 0 {
		return nil
	}
	return authorizeAny(c, a.s.Scopes, a.s.Roles)
}

// malformedClaims describes a payload claims.Parse refused, naming the
// claim without echoing its value.
func malformedClaims(err error) *Error {
	desc := "the token's claims are malformed"
	if _, detail, ok := strings.Cut(err.Error(), claims.ErrMalformed.Error()+": "); ok {
		desc += ": " + detail
	}
	return newError(ErrMalformedToken, desc, err)
}
