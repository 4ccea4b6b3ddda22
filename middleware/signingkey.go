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
// a token of issuer iss and tenant tid. With wait, it waits for (or answers
// 503 while it cannot load) the document that names the key's issuer;
// without, a document not loaded yet is errIssuersUnknown.
func (src *source) keyMaySign(ctx context.Context, st *sourceState, kid, iss, tid string, wait bool) *Error {
	keyIss, e := src.statedIssuer(ctx, st, kid, wait)
	if e != nil {
		return e
	}
	if keyIss != "" && !keyIssuerAllows(keyIss, iss, tid) {
		return newError(ErrInvalidIssuer, "the token's signing key is not valid for its issuer", nil)
	}
	return nil
}

// statedIssuer is the issuer Entra names for key kid: in st's own key set,
// or else in the authority's v2.0 key set, which is where Entra states it
// (its v1.0 key sets name none). "" means no issuer is stated: any issuer
// of the authority may use the key.
func (src *source) statedIssuer(ctx context.Context, st *sourceState, kid string, wait bool) (string, *Error) {
	if iss := st.keyIssuers[kid]; iss != "" {
		return iss, nil
	}
	for _, sibling := range src.auth.sources {
		if sibling == src || !sibling.spec.namesKeyIssuers {
			continue
		}
		other := sibling.state.Load()
		if other == nil {
			if !wait {
				return "", newError(ErrKeysUnavailable, "", errIssuersUnknown)
			}
			var err error
			if other, err = sibling.current(ctx); err != nil {
				// Until it loads, a key that may be restricted to another
				// tenant cannot be told from one that is not.
				return "", sibling.unavailable(err)
			}
		}
		return other.keyIssuers[kid], nil
	}
	return "", nil
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
