package middleware

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/entragate/entragate/claims"
)

// Authenticator validates Entra ID access tokens for one API: the rules of
// its APIConfig, over the authorities and keys of its Provider. It is safe
// for concurrent use, and cheap: any number of Authenticators (one per API
// a process serves) share one Provider.
type Authenticator struct {
	p      *Provider
	ownsP  bool // New's: Close closes it
	s      *apiSettings
	cache  *tokenCache
	closed atomic.Bool
}

// New is the one-call path for one API: it starts a Provider for
// cfg.TenantID or cfg.Authorities (see NewProvider: it waits briefly for
// the first key loads and succeeds even while Entra is unreachable) and
// returns an Authenticator for the API cfg describes. Close stops both.
// Only an invalid Config is an error.
func New(ctx context.Context, cfg Config) (*Authenticator, error) {
	pc, ac, err := cfg.split()
	if err != nil {
		return nil, err
	}
	// The API's settings are checked first: a typo there must not cost a
	// start of the loaders.
	if _, err := newAPISettings(ac); err != nil {
		return nil, err
	}
	p, err := NewProvider(ctx, pc)
	if err != nil {
		return nil, err
	}
	a, err := p.NewAuthenticator(ac)
	if err != nil {
		p.Close()
		return nil, err
	}
	a.ownsP = true
	return a, nil
}

// NewAuthenticator returns an Authenticator for the API cfg describes,
// checking tokens from p's authorities. It starts nothing: closing it only
// refuses further tokens; p goes on serving its other verifiers.
func (p *Provider) NewAuthenticator(cfg APIConfig) (*Authenticator, error) {
	s, err := newAPISettings(cfg)
	if err != nil {
		return nil, err
	}
	s.observer = p.observerFor(s.observer)
	a := &Authenticator{p: p, s: s}
	if s.cacheSize > 0 {
		a.cache = newTokenCache(s.cacheSize, s.cacheSize*tokenCacheEntryCost)
	}
	return a, nil
}

// Provider returns the Provider a's tokens come from, e.g. to build a web
// app's IDTokenVerifier on the same keys.
func (a *Authenticator) Provider() *Provider { return a.p }

// Close refuses further tokens with ErrClosed and, for an Authenticator
// made by New, closes its Provider (stopping the key refreshes and waiting
// for them). Close is idempotent.
func (a *Authenticator) Close() error {
	a.closed.Store(true)
	if a.ownsP {
		return a.p.Close()
	}
	return nil
}

// Ready reports whether the Provider's keys are all loaded (see
// Provider.Ready).
func (a *Authenticator) Ready() bool { return a.p.Ready() }

// Stats reports the state of the signing keys and of the token cache, e.g.
// for a readiness probe or metrics.
type Stats struct {
	// KeyStats are the Provider's.
	KeyStats
	// Cache counts the verified-token cache's work.
	Cache CacheStats
}

// Stats reports the state of the signing keys and of the token cache.
func (a *Authenticator) Stats() Stats {
	st := Stats{KeyStats: a.p.Stats()}
	if a.cache != nil {
		st.Cache = a.cache.stats()
	}
	return st
}

// Validate checks a raw access token (without the "Bearer " prefix), as
// RequireAuth does for HTTP requests, and returns its claims: for a
// websocket upgrade, a message consumer or any transport without a module
// of its own. The claims are the caller's own copy: changing them changes
// nothing else.
//
// APIConfig.Scopes and Roles apply. Every error is an *Error wrapping one
// of the Err* reasons; its Description (and Status, Code) may be sent to
// the caller, its Error() text is for logs.
func (a *Authenticator) Validate(ctx context.Context, rawToken string) (*claims.Claims, error) {
	return a.check(ctx, rawToken, nil)
}

// Authorize is Validate, then rule: the one call a transport (a gRPC
// interceptor, a gateway's auth endpoint) makes per request, reported to
// the Observer as one decision. A token that fails the rule gets the
// rule's *Error (403 insufficient_scope with the scopes that would do).
func (a *Authenticator) Authorize(ctx context.Context, rawToken string, rule Rule) (*claims.Claims, error) {
	return a.check(ctx, rawToken, &rule)
}

// AuthorizeHeader is Authorize for a request's Authorization header
// values, as a transport carries them (gRPC's authorization metadata, a
// gateway's forwarded header), returning ctx with the request's own copy
// of the claims, for claims.FromContext, as RequireAuth does. The Bearer
// scheme is read the way RequireAuth reads it, case-insensitively; no
// value is ErrMissingToken, as is another scheme; several values, an
// empty token or several tokens in one value are ErrMalformedRequest.
func (a *Authenticator) AuthorizeHeader(ctx context.Context, authorization []string, rule Rule) (context.Context, error) {
	d := decision{token: "access"}
	observed := a.s.observer.Decision != nil
	if observed {
		d.start = time.Now()
	}
	raw, e := bearerToken(authorization)
	var c *claims.Claims
	if e == nil {
		if c, e = a.validate(ctx, raw, true, &d); e == nil {
			e = a.completeChallenge(rule.apply(withRoute(ctx, d.src), c), d.src, c)
		}
	}
	if observed {
		a.report(ctx, &d, e, time.Now())
	}
	if e != nil {
		return nil, e
	}
	return claims.NewContext(ctx, c), nil
}

// Challenge is the WWW-Authenticate value the HTTP side sends with err (an
// *Error from Validate, Authorize or AuthorizeHeader), in this API's realm:
// for a transport that passes it on, as gRPC metadata or a gateway's
// response header. It is "" for an answer without one (503) and for an
// error that is no *Error.
func (a *Authenticator) Challenge(err error) string {
	var e *Error
	if !errors.As(err, &e) {
		return ""
	}
	switch e.Status {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusBadRequest:
		return challenge(e, a.s.realm)
	}
	return ""
}

// WriteError writes the answer RequireAuth sends for err (an *Error from
// Validate, Authorize or AuthorizeHeader) in this API's realm: status,
// WWW-Authenticate or Retry-After, and the JSON body. For a transport that
// answers over HTTP itself, such as a gateway's authentication endpoint.
// An error that is no *Error is answered as 401 invalid_token.
func (a *Authenticator) WriteError(w http.ResponseWriter, err error) {
	var e *Error
	if !errors.As(err, &e) {
		e = newError(ErrMalformedToken, "", err)
	}
	writeError(w, answerable(e), a.s.realm)
}

func (a *Authenticator) check(ctx context.Context, raw string, rule *Rule) (*claims.Claims, error) {
	d := decision{token: "access"}
	observed := a.s.observer.Decision != nil
	if observed {
		d.start = time.Now()
	}
	var c *claims.Claims
	var e *Error
	if scheme, _, ok := strings.Cut(raw, " "); ok && strings.EqualFold(scheme, "Bearer") {
		e = newError(ErrMalformedToken, "pass the token without the Bearer scheme: Validate takes the token itself, not the Authorization header value", nil)
	} else if c, e = a.validate(ctx, raw, false, &d); e == nil && rule != nil {
		e = a.completeChallenge(rule.apply(withRoute(ctx, d.src), c), d.src, c)
	}
	if observed {
		a.report(ctx, &d, e, time.Now())
	}
	if e != nil {
		return nil, e
	}
	return c.Clone(), nil
}

// report tells the Observer about a decision ended with e.
func (a *Authenticator) report(ctx context.Context, d *decision, e *Error, end time.Time) {
	reportDecision(ctx, &a.s.observer, d, e, end)
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
// comma means the request holds several tokens (400), not a bad token. d
// records what the observer is told. The claims returned are the cache's
// own (or would be): callers copy them before handing them out; on a
// refusal they are the unverified claims, for logs.
func (a *Authenticator) validate(ctx context.Context, raw string, fromHeader bool, d *decision) (*claims.Claims, *Error) {
	if a.closed.Load() || a.p.closed() {
		return nil, closedError()
	}
	if len(raw) > a.s.maxTokenSize {
		return nil, newError(ErrTokenTooLarge, "the token exceeds the accepted size", nil)
	}
	if a.cache != nil {
		if c, e, hit := a.fromCache(ctx, raw, d); hit {
			return c, e
		}
	}
	if fromHeader {
		if e := checkOneToken(raw); e != nil {
			return nil, e
		}
	}
	tok, c, e := parseToken(raw)
	d.claims = c
	if e != nil {
		return c, e
	}
	if e := a.s.checkClaims(c, a.p.s.now()); e != nil {
		return c, e
	}
	// Read before the documents are: a load finishing during this
	// validation makes the entry's first hit check it again.
	generation := a.p.generation.Load()
	v, e := a.p.verify(ctx, tok, c)
	d.src, d.verified = v.src, e == nil // once routed, refusals name the authority too
	if e != nil {
		return c, e
	}
	if a.cache != nil {
		a.cache.add(raw, tok.signature, a.newEntry(c, tok.kid, v, generation))
	}
	return c, a.authorize(v.src, c)
}

// authorize applies the rules that refuse a genuine token with 403: guest
// users, and APIConfig.Scopes and Roles. Route rules come after.
func (a *Authenticator) authorize(src *source, c *claims.Claims) *Error {
	if a.s.denyGuests && src.auth.shape.guestsApply() && c.IsGuest() {
		return newError(ErrGuestUser, "guest users of the tenant are not allowed to call this API", nil)
	}
	if a.s.required == nil {
		return nil
	}
	return a.s.required.apply(context.Background(), c)
}
