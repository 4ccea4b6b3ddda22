package middleware

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/entragate/entragate/claims"
)

// router sends a token to the one document whose issuer it names. Its
// index is rebuilt whenever a document loads, and read without locks.
type router struct {
	sources   []*source
	byVersion map[string][]*source // documents whose issuers check tokens of that ver
	index     atomic.Pointer[issuerIndex]
	logger    *slog.Logger
	mu        sync.Mutex
}

// issuerIndex maps issuers to the documents that announce them: literal
// issuers by value, templates by their text with {tenantid} in place.
type issuerIndex struct {
	literal   map[string][]*source
	templates map[string][]*source
}

func newRouter(authorities []*authority, logger *slog.Logger) *router {
	r := &router{byVersion: map[string][]*source{}, logger: logger}
	for _, a := range authorities {
		for _, src := range a.sources {
			r.sources = append(r.sources, src)
			for _, v := range src.spec.routes {
				r.byVersion[v] = append(r.byVersion[v], src)
			}
		}
	}
	r.index.Store(&issuerIndex{})
	return r
}

// rebuild indexes the issuers of every loaded document that routes tokens.
func (r *router) rebuild() {
	r.mu.Lock()
	defer r.mu.Unlock()
	idx := &issuerIndex{literal: map[string][]*source{}, templates: map[string][]*source{}}
	for _, src := range r.sources {
		st := src.state.Load()
		if st == nil || len(src.spec.routes) == 0 {
			continue
		}
		for _, iss := range st.issuers {
			list := idx.literal
			if strings.Contains(iss, tenantPlaceholder) {
				list = idx.templates
			}
			for _, other := range list[iss] {
				if other.auth != src.auth {
					r.logger.Error("entragate: two authorities announce the same issuer; tokens of that issuer are refused until the configuration names it once",
						slog.String("issuer", iss), slog.String("authority", src.auth.name), slog.String("other", other.auth.name))
				}
			}
			list[iss] = append(list[iss], src)
		}
	}
	r.index.Store(idx)
}

// lookup returns the documents announcing iss: a literal issuer, or a
// template that, filled with tid, is iss. Both are map look-ups whatever
// the number of authorities and tenants.
func (idx *issuerIndex) lookup(iss, tid string) []*source {
	if found := idx.literal[iss]; found != nil {
		return found
	}
	if len(idx.templates) == 0 || !isGUID(tid) || !strings.Contains(iss, tid) {
		return nil
	}
	// Put the placeholder back where the token names its tenant, then
	// check that filling the template gives iss exactly: an iss that
	// holds a literal {tenantid} beside its tenant ID (External ID's
	// issuers name the tenant twice) maps to a template too, and must not
	// match it.
	template := strings.ReplaceAll(iss, tid, tenantPlaceholder)
	found := idx.templates[template]
	if found == nil || fillTenant(template, tid) != iss {
		return nil
	}
	return found
}

// route finds the document that checks c. Documents that have not loaded
// yet are waited for (briefly) only when no loaded one announces the
// issuer: one authority's or version's outage never holds tokens of
// another.
func (r *router) route(ctx context.Context, c *claims.Claims, version string) (*source, *sourceState, *Error) {
	idx := r.index.Load()
	candidates := idx.lookup(c.Issuer, c.TenantID)
	if candidates == nil {
		var e *Error
		if candidates, e = r.awaitPending(ctx, c, version); e != nil {
			return nil, nil, e
		}
	}
	for _, other := range candidates[1:] {
		if other.auth != candidates[0].auth {
			// Two configured authorities announce this issuer (one tenant
			// named twice, by ID and by domain): which one's rules apply
			// would depend on the list order, so neither does.
			return nil, nil, newError(ErrInvalidIssuer, "several of this API's authorities announce the token's issuer; the configuration is ambiguous", nil)
		}
	}
	a := candidates[0].auth
	src, e := a.shape.pick(candidates, c, version)
	if e != nil {
		return nil, nil, e
	}
	st := src.state.Load()
	if e := a.shape.checkTenant(a, st, c); e != nil {
		return nil, nil, e
	}
	return src, st, nil
}

// awaitPending waits for the documents of the token's version that have
// not loaded yet, then looks the issuer up again: it may be one of theirs.
func (r *router) awaitPending(ctx context.Context, c *claims.Claims, version string) ([]*source, *Error) {
	var pending []*source
	for _, src := range r.byVersion[version] {
		if src.state.Load() == nil {
			pending = append(pending, src)
		}
	}
	if len(pending) == 0 {
		return nil, r.notAccepted(c)
	}
	var firstErr *Error
	for _, src := range pending {
		if _, err := src.current(ctx); err != nil && firstErr == nil {
			firstErr = src.unavailable(err)
		}
	}
	if candidates := r.index.Load().lookup(c.Issuer, c.TenantID); candidates != nil {
		return candidates, nil
	}
	if firstErr != nil {
		// The issuer may be one of those we could not load.
		return nil, firstErr
	}
	return nil, r.notAccepted(c)
}

// notAccepted refuses an issuer no document announces, saying why: the
// index never matches a literal {tenantid}, and issuer templates are
// filled from tid, which must be a tenant ID. A token without one (B2C's
// may have none) is refused so only once no document that might announce
// its issuer is still loading.
func (r *router) notAccepted(c *claims.Claims) *Error {
	if len(r.index.Load().templates) > 0 && !isGUID(c.TenantID) {
		return newError(ErrInvalidIssuer, "the token has no valid tid claim (a tenant ID) to check its issuer with", nil)
	}
	return issuerNotAccepted(c.Issuer)
}

func issuerNotAccepted(iss string) *Error {
	if strings.Contains(iss, tenantPlaceholder) {
		return newError(ErrInvalidIssuer, "the token's issuer is a template, not an issuer", nil)
	}
	return newError(ErrInvalidIssuer, "the token's issuer is not accepted by this API", nil)
}

// tenantOf is the tenant a routed token belongs to.
func tenantOf(st *sourceState, c *claims.Claims) string {
	if c.TenantID != "" {
		return strings.ToLower(c.TenantID)
	}
	return st.tenantID
}

// issuerVersion infers the token version an issuer URL belongs to, the way
// Microsoft.IdentityModel picks v1 or v2 metadata: v2 issuers end in /v2.0.
func issuerVersion(iss string) string {
	if strings.HasSuffix(iss, "/v2.0") || strings.HasSuffix(iss, "/v2.0/") {
		return claims.Version2
	}
	return claims.Version1
}
