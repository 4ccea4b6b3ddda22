package middleware

import (
	"context"
	"crypto/rsa"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/entragate/entragate/claims"
)

// A Provider is where tokens come from: it loads the metadata documents and
// signing keys of its authorities and keeps them fresh, routes each token
// to the authority that issued it, and admits tenants. It is safe for
// concurrent use; create it with NewProvider and stop it with Close.
//
// Any number of cheap verifiers share one Provider, and with it one set of
// fetches to Entra: an Authenticator per API (NewAuthenticator), an
// IDTokenVerifier per web app (NewIDTokenVerifier). New builds a Provider
// and one Authenticator in one call.
type Provider struct {
	s           *providerSettings
	ctx         context.Context
	cancel      context.CancelFunc
	wg          sync.WaitGroup
	authorities []*authority
	router      *router
	closeOnce   sync.Once
	// generation counts successful document loads: a verifier's cache
	// entries checked against an older generation are checked again.
	generation atomic.Uint64
}

// authority is an Authority at run time: its documents and admission.
type authority struct {
	Authority
	name    string // String(), computed once
	sources []*source
	admit   *admitter // multi-tenant authorities only
}

// NewProvider checks cfg, starts loading the metadata and signing keys of
// every authority, and returns a Provider. It waits for those first loads
// until they finish, about twice FetchTimeout passes (a load is a metadata
// request, then a key-set request), or ctx ends. If Entra cannot be
// reached, NewProvider still succeeds (a service must not crash-loop on a
// network blip): keys keep loading in the background and tokens get 503
// until they arrive. Only an invalid configuration is an error.
func NewProvider(ctx context.Context, cfg ProviderConfig) (*Provider, error) {
	s, err := newProviderSettings(cfg)
	if err != nil {
		return nil, err
	}
	p := &Provider{s: s}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.build()
	p.start(ctx)
	return p, nil
}

// build turns each Authority into its documents and admission.
func (p *Provider) build() {
	for _, a := range p.s.authorities {
		ra := &authority{Authority: a, name: a.String()}
		if a.admission.configured() { // multi-tenant authorities, whose check requires it
			ra.admit = newAdmitter(p.ctx, ra, p.s)
		}
		for _, spec := range a.shape.documents(&a) {
			ra.sources = append(ra.sources, newSource(p, ra, spec))
		}
		p.authorities = append(p.authorities, ra)
	}
	p.router = newRouter(p.authorities, p.s.logger)
}

// start runs each document's loader and waits, within bounds, for the
// first loads.
func (p *Provider) start(ctx context.Context) {
	var firsts []*generation
	for _, src := range p.router.sources {
		firsts = append(firsts, src.firstLoad())
		p.wg.Add(1)
		go src.run(&p.wg)
	}
	timer := time.NewTimer(2 * p.s.fetchTimeout)
	defer timer.Stop()
	for _, g := range firsts {
		select {
		case <-g.done:
		case <-timer.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// documentsChanged runs after any document loads: the issuer index is
// rebuilt, and cached tokens are checked again on their next use.
func (p *Provider) documentsChanged() {
	p.router.rebuild()
	p.generation.Add(1)
}

// Close stops background key refreshes and waits for them to end. Tokens
// still being checked, and any after, get ErrClosed. Close is idempotent.
func (p *Provider) Close() error {
	p.closeOnce.Do(func() {
		p.cancel()
		p.wg.Wait()
		if p.s.ownClient {
			p.s.client.CloseIdleConnections()
		}
	})
	return nil
}

func (p *Provider) closed() bool { return p.ctx.Err() != nil }

// Ready reports whether the signing keys of every authority (every
// document: token version, B2C policy) have been loaded, so that every
// token its verifiers accept can be checked. Keys, once loaded, are kept
// through outages. Stats tells which document is missing and why.
func (p *Provider) Ready() bool {
	for _, src := range p.router.sources {
		if src.state.Load() == nil {
			return false
		}
	}
	return true
}

// KeyStats reports the state of a Provider's metadata documents and keys.
type KeyStats struct {
	// KeysLoaded is true when every document has loaded keys (see Ready).
	KeysLoaded bool
	// KeyIDs are the key IDs currently trusted, over all documents.
	KeyIDs []string
	// Fetches counts metadata and key-set requests made; Failures counts
	// load attempts that failed.
	Fetches, Failures int64
	// LastError is the most recent load error of any document that has
	// not loaded successfully since, and LastErrorAt when it happened.
	LastError   error
	LastErrorAt time.Time
	// Sources details each metadata document: which authority, version or
	// policy it serves, whether it is loaded, and its last error.
	Sources []SourceStats
}

// Stats reports the state of the metadata documents and keys, e.g. for a
// readiness probe or metrics.
func (p *Provider) Stats() KeyStats {
	st := KeyStats{KeysLoaded: true}
	for _, src := range p.router.sources {
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
	return st
}

// checkVersion reads a token's version (ver; the issuer's form when ver
// is absent, as Microsoft.IdentityModel does) and refuses versions no
// authority accepts, before its issuer is looked at.
func (p *Provider) checkVersion(c *claims.Claims) (string, *Error) {
	version := c.Version
	if version == "" {
		version = issuerVersion(c.Issuer)
	}
	switch version {
	case claims.Version1, claims.Version2:
	default:
		return "", newError(ErrInvalidVersion, "the token's ver claim must be 1.0 or 2.0", nil)
	}
	if len(p.router.byVersion[version]) == 0 {
		return "", newError(ErrInvalidVersion, "this API does not accept v"+version+" tokens", nil)
	}
	return version, nil
}

// verified is what verify learned of a token: src is set once it was
// routed, even when it was then refused.
type verified struct {
	src           *source
	pub           *rsa.PublicKey
	admittedUntil time.Time
}

// verify applies what access and ID tokens share once their own claims
// passed: the version, the issuer and tenant (routing the token to the
// document that announces its issuer), the key and its issuer rule, the
// signature, then the tenant's admission, which may ask the API's own
// database, so only for genuine tokens.
func (p *Provider) verify(ctx context.Context, tok jws, c *claims.Claims) (verified, *Error) {
	var v verified
	version, e := p.checkVersion(c)
	if e != nil {
		return v, e
	}
	src, st, e := p.router.route(ctx, c, version)
	if e != nil {
		return v, e
	}
	v.src = src // from here on, a refusal names the authority
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
	v.pub, v.admittedUntil = pub, admittedUntil
	return v, nil
}

// admitTenant applies a multi-tenant authority's admission; other
// authorities admit their one tenant.
func (a *authority) admitTenant(ctx context.Context, tid string) (time.Time, *Error) {
	if a.admit == nil {
		return time.Time{}, nil
	}
	return a.admit.admit(ctx, tid)
}
