package middleware

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/MicahParks/jwkset"
)

// verificationKey finds the key for a token in the document's key set,
// refreshing the set once if the key ID is unknown, and applies Entra's
// signing-key issuer rule. It returns the state the key was found in.
func (src *source) verificationKey(ctx context.Context, st *sourceState, kid, iss, tid string) (*rsa.PublicKey, *sourceState, *Error) {
	pub, err := st.publicKey(ctx, kid)
	missing := errors.Is(err, jwkset.ErrKeyNotFound)
	if cur := src.state.Load(); missing && cur != nil && cur != st {
		// A load finished since the caller read its state.
		st = cur
		pub, err = st.publicKey(ctx, kid)
		missing = errors.Is(err, jwkset.ErrKeyNotFound)
	}
	if missing {
		fresh, waitErr := src.await(ctx, true)
		switch {
		case errors.Is(waitErr, errKeySetFresh):
			return nil, nil, newError(ErrUnknownSigningKey, "the token's signing key is not published by its issuer", err)
		case waitErr != nil:
			return nil, nil, src.unavailable(waitErr)
		}
		st = fresh
		pub, err = st.publicKey(ctx, kid)
		missing = errors.Is(err, jwkset.ErrKeyNotFound)
	}
	switch {
	case missing:
		return nil, nil, newError(ErrUnknownSigningKey, "the token's signing key is not published by its issuer", err)
	case err != nil:
		return nil, nil, newError(ErrUnknownSigningKey, "", err)
	}
	if e := src.keyMaySign(ctx, st, kid, iss, tid, true); e != nil {
		return nil, nil, e
	}
	return pub, st, nil
}

// publicKey reads key kid from the state's key set (an error wrapping
// jwkset.ErrKeyNotFound when it has none).
func (st *sourceState) publicKey(ctx context.Context, kid string) (*rsa.PublicKey, error) {
	jwk, err := st.keys.Storage().KeyRead(ctx, kid)
	if err != nil {
		return nil, err
	}
	pub, ok := jwk.Key().(*rsa.PublicKey) // fetchKeySet keeps RSA keys only
	if !ok {
		return nil, fmt.Errorf("key %q is %T, not RSA", kid, jwk.Key())
	}
	return pub, nil
}

// errIssuersUnknown is an internal signal: the document that says which
// issuer a key may sign for has not loaded.
var errIssuersUnknown = errors.New("the issuers of the signing keys are not known yet")

// keyMaySign applies Entra's per-key issuer rule to key kid of state st for
// a token of issuer iss and tenant tid: the issuer st's own key set names
// for the key, if any, and the one the authority's v2.0 key set names,
// which binds every document of the authority; the stricter wins. With
// wait, it waits for (or answers 503 while it cannot load) the v2.0 key
// set; without, a v2.0 key set not loaded, or lacking the key, is
// errIssuersUnknown.
func (src *source) keyMaySign(ctx context.Context, st *sourceState, kid, iss, tid string, wait bool) *Error {
	if own := st.keyIssuers[kid]; own != "" && !keyIssuerAllows(own, iss, tid) {
		return keyIssuerRefusal()
	}
	if src.spec.namesKeyIssuers {
		return nil
	}
	stated, e := src.v2StatedIssuer(ctx, kid, wait)
	if e != nil {
		return e
	}
	if stated != "" && !keyIssuerAllows(stated, iss, tid) {
		return keyIssuerRefusal()
	}
	return nil
}

func keyIssuerRefusal() *Error {
	return newError(ErrInvalidIssuer, "the token's signing key is not valid for its issuer", nil)
}

// v2StatedIssuer is the issuer the authority's v2.0 key set names for key
// kid, "" when it names none (or the authority has no such key set). A key
// the v2.0 key set does not hold yet cannot be told from one restricted to
// another tenant: the set is reloaded for it (within MinLoadInterval), and
// until it holds the key, tokens signed with it get 503.
func (src *source) v2StatedIssuer(ctx context.Context, kid string, wait bool) (string, *Error) {
	for _, sibling := range src.auth.sources {
		if sibling == src || !sibling.spec.namesKeyIssuers {
			continue
		}
		other := sibling.state.Load()
		if other == nil || !other.holds(ctx, kid) {
			if !wait {
				return "", newError(ErrKeysUnavailable, "", errIssuersUnknown)
			}
			var err error
			if other == nil {
				other, err = sibling.current(ctx)
			} else {
				other, err = sibling.await(ctx, true)
			}
			switch {
			case err != nil:
				return "", sibling.unavailable(err)
			case !other.holds(ctx, kid):
				return "", sibling.unavailable(fmt.Errorf("%w: key %q is not in the v2.0 key set", errIssuersUnknown, kid))
			}
		}
		return other.keyIssuers[kid], nil
	}
	return "", nil
}

// holds reports whether the state's key set has key kid.
func (st *sourceState) holds(ctx context.Context, kid string) bool {
	_, err := st.keys.Storage().KeyRead(ctx, kid)
	return err == nil
}

// keyIssuerAllows applies Microsoft's signing-key issuer validation
// (Microsoft.IdentityModel's EnableAadSigningKeyIssuerValidation): a key
// that names an issuer may sign only for that issuer's tenant, with
// {tenantid} filled from tid. Tenants are compared, not issuer forms: a
// key stated for https://login.microsoftonline.com/{tid}/v2.0 signs that
// tenant's v1.0 tokens (https://sts.windows.net/{tid}/) too, whichever key
// set states it.
func keyIssuerAllows(keyIssuer, iss, tid string) bool {
	if strings.Contains(keyIssuer, tenantPlaceholder) {
		if tid == "" {
			return false
		}
		keyIssuer = fillTenant(keyIssuer, tid)
	}
	if keyIssuer == iss {
		return true
	}
	t := issuerTenant(keyIssuer)
	return isGUID(t) && strings.EqualFold(t, tid)
}

// issuerTenant is the tenant segment an Entra issuer URL names: the first
// path segment (after tfp/ in B2C's policy form), or "".
func issuerTenant(issuer string) string {
	u, err := url.Parse(issuer)
	if err != nil || u.Host == "" {
		return ""
	}
	segs := strings.Split(strings.Trim(u.Path, "/"), "/")
	if len(segs) > 1 && segs[0] == "tfp" { // B2C's https://{host}/tfp/{tid}/{policy}/v2.0/
		segs = segs[1:]
	}
	return segs[0]
}

// TenantIDPlaceholder is where an issuer template (a multi-tenant
// authority's, or one given to WithIssuers) names the token's tenant: it
// is filled from the token's tid.
const TenantIDPlaceholder = "{tenantid}"

const tenantPlaceholder = TenantIDPlaceholder

// fillTenant replaces every {tenantid} of an issuer template: External ID
// issuers name the tenant twice.
func fillTenant(template, tid string) string {
	return strings.ReplaceAll(template, tenantPlaceholder, tid)
}
