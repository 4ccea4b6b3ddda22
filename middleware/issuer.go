package middleware

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/entragate/entragate/claims"
)

// authority is an Authority at run time: its sources and admission rule.
type authority struct {
	Authority
	sources []*source
	admit   *admitter // multi-tenant authorities only
}

// router sends a token to the one source whose issuer it names. Its index
// is rebuilt whenever a source loads, and read without locks.
type router struct {
	sources   []*source
	byVersion map[string][]*source // sources whose tokens may carry that ver
	index     atomic.Pointer[issuerIndex]
	mu        sync.Mutex
}

// issuerIndex maps issuers to the sources that announce them: literal
// issuers by value, templates by their text with {tenantid} in place.
type issuerIndex struct {
	literal   map[string][]*source
	templates map[string][]*source
}

func newRouter(authorities []*authority) *router {
	r := &router{byVersion: map[string][]*source{}}
	for _, a := range authorities {
		for _, src := range a.sources {
			r.sources = append(r.sources, src)
			if !src.spec.routes {
				continue
			}
			if a.kind == kindB2C {
				// B2C issues v1.0 access tokens under its v2.0 issuer.
				r.byVersion[claims.Version1] = append(r.byVersion[claims.Version1], src)
				r.byVersion[claims.Version2] = append(r.byVersion[claims.Version2], src)
				continue
			}
			r.byVersion[src.spec.version] = append(r.byVersion[src.spec.version], src)
		}
	}
	r.index.Store(&issuerIndex{})
	return r
}

// rebuild indexes the issuers of every loaded source.
func (r *router) rebuild() {
	r.mu.Lock()
	defer r.mu.Unlock()
	idx := &issuerIndex{literal: map[string][]*source{}, templates: map[string][]*source{}}
	for _, src := range r.sources {
		st := src.state.Load()
		if st == nil || !src.spec.routes {
			continue
		}
		for _, iss := range st.issuers {
			list := idx.literal
			if strings.Contains(iss, tenantPlaceholder) {
				list = idx.templates
			}
			for _, other := range list[iss] {
				if other.auth != src.auth {
					src.s.opsLogger.Error("entragate: two authorities announce the same issuer; tokens of that issuer are refused until the configuration names it once",
						slog.String("issuer", iss), slog.String("authority", src.auth.String()), slog.String("other", other.auth.String()))
				}
			}
			list[iss] = append(list[iss], src)
		}
	}
	r.index.Store(idx)
}

// lookup returns the sources announcing iss: a literal issuer, or a
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

// route finds the source that issued c. Sources that have not loaded yet
// are waited for (briefly) only when no loaded source announces the issuer:
// one authority's or version's outage never holds tokens of another.
func (r *router) route(ctx context.Context, c *claims.Claims, version string) (*source, *sourceState, *Error) {
	idx := r.index.Load()
	candidates := idx.lookup(c.Issuer, c.TenantID)
	if candidates == nil && len(idx.templates) > 0 && !isGUID(c.TenantID) {
		// Issuer templates are filled from tid, which must be a tenant ID.
		return nil, nil, newError(ErrInvalidIssuer, "the token has no valid tid claim (a tenant ID) to check its issuer with", nil)
	}
	if candidates == nil {
		var pending []*source
		for _, src := range r.byVersion[version] {
			if src.state.Load() == nil {
				pending = append(pending, src)
			}
		}
		if len(pending) == 0 {
			return nil, nil, issuerNotAccepted(c.Issuer)
		}
		var firstErr *Error
		for _, src := range pending {
			if _, err := src.current(ctx); err != nil && firstErr == nil {
				firstErr = src.unavailable(err)
			}
		}
		candidates = r.index.Load().lookup(c.Issuer, c.TenantID)
		if candidates == nil {
			if firstErr != nil {
				// The issuer may be one of those we could not load.
				return nil, nil, firstErr
			}
			return nil, nil, issuerNotAccepted(c.Issuer)
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
	src := pick(candidates, c, version)
	if src == nil {
		if candidates[0].auth.kind == kindB2C {
			return nil, nil, newError(ErrPolicyNotAllowed, "the token's B2C user flow or policy (tfp or acr) is not accepted by this API", nil)
		}
		return nil, nil, newError(ErrInvalidVersion, "the token's version does not match its issuer", nil)
	}
	st := src.state.Load()
	if e := src.auth.checkTenant(st, c); e != nil {
		return nil, nil, e
	}
	return src, st, nil
}

// issuerNotAccepted refuses an issuer no document announces; the index
// never matches a literal {tenantid}, and the description says why.
func issuerNotAccepted(iss string) *Error {
	if strings.Contains(iss, tenantPlaceholder) {
		return newError(ErrInvalidIssuer, "the token's issuer is a template, not an issuer", nil)
	}
	return newError(ErrInvalidIssuer, "the token's issuer is not accepted by this API", nil)
}

// pick chooses among the sources announcing one issuer: the one of the
// token's version, or for B2C, of the token's policy.
func pick(candidates []*source, c *claims.Claims, version string) *source {
	for _, src := range candidates {
		if src.auth.kind == kindB2C {
			policy := c.Policy
			if policy == "" {
				policy = c.ACR
			}
			if policy != "" && strings.EqualFold(policy, src.spec.policy) {
				return src
			}
			continue
		}
		if src.spec.version == version {
			return src
		}
	}
	return nil
}

// checkTenant applies the authority's tenant rule to a routed token: tid
// names the tenant the issuer names (single tenants, External ID; B2C
// tokens may omit it), or, for multi-tenant authorities, is a tenant ID
// (the issuer already matched the template filled with it).
func (a *authority) checkTenant(st *sourceState, c *claims.Claims) *Error {
	tid := c.TenantID
	switch a.kind {
	case kindEntraMultiTenant:
		// The issuer matched the template filled with tid, a tenant ID.
		return a.admit.personalAccountRule(strings.ToLower(tid))
	case kindB2C:
		switch {
		case tid == "":
			return nil
		case !isGUID(st.tenantID):
			// The issuer names the tenant by domain: it pins the tenant,
			// and tid, a GUID, cannot be compared with it.
			if !isGUID(tid) {
				return newError(ErrInvalidIssuer, "the token's tid is not a tenant ID", nil)
			}
			return nil
		}
	default:
		if tid == "" {
			return newError(ErrInvalidIssuer, "the token has no tid claim", nil)
		}
	}
	if !strings.EqualFold(tid, st.tenantID) {
		return newError(ErrInvalidIssuer, "the token's tid is not the tenant of its issuer", nil)
	}
	return nil
}

// tenantOf is the tenant a routed token belongs to.
func tenantOf(st *sourceState, c *claims.Claims) string {
	if c.TenantID != "" {
		return strings.ToLower(c.TenantID)
	}
	return st.tenantID
}
