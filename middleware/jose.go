package middleware

import (
	"encoding/base64"
	"strings"

	"github.com/entragate/entragate/claims"
)

// Limits on the JOSE header. Entra's headers are under 200 bytes.
const (
	maxHeaderBytes = 2048
	maxKeyIDLength = 256
)

// jws is a compact JWS split into its parts, the header decoded and checked.
type jws struct {
	kid          string
	signingInput string // header.payload, what the signature covers
	payload      string // base64url
	signature    string // base64url
}

var b64 = base64.RawURLEncoding.Strict()

// splitJWS decodes and checks the JOSE header, applying rules golang-jwt
// lacks: exactly RS256, a kid, no crit (RFC 7515 §4.1.11), no duplicate
// member names (claims.ParseHeader, the scanner the claims are read with),
// strict base64url, and Graph's nonce.
//
// Key-locating members (jku, x5u, jwk, x5c) are never read: keys come only
// from the issuer's published key set (RFC 8725 §3.10).
func splitJWS(raw string) (jws, *Error) {
	// Go's base64 decoders skip CR and LF even in strict mode: refused
	// here, a token has one spelling, so one cache entry and one verdict.
	if strings.IndexByte(raw, '\n') >= 0 || strings.IndexByte(raw, '\r') >= 0 {
		return jws{}, newError(ErrMalformedToken, "the token is not base64url: it contains a line break", nil)
	}
	first := strings.IndexByte(raw, '.')
	if first < 0 {
		return jws{}, newError(ErrMalformedToken, "the token is not a JWT (expected three dot-separated parts)", nil)
	}
	second := first + 1 + strings.IndexByte(raw[first+1:], '.')
	if second == first {
		return jws{}, newError(ErrMalformedToken, "the token is not a JWT (expected three dot-separated parts)", nil)
	}
	if strings.IndexByte(raw[second+1:], '.') >= 0 {
		if strings.Count(raw, ".") == 4 {
			return jws{}, newError(ErrMalformedToken, "encrypted tokens (JWE) are not accepted", nil)
		}
		return jws{}, newError(ErrMalformedToken, "the token is not a JWT (expected three dot-separated parts)", nil)
	}
	seg := raw[:first]
	if b64.DecodedLen(len(seg)) > maxHeaderBytes {
		return jws{}, newError(ErrMalformedToken, "the token header is too large", nil)
	}
	var buf [maxHeaderBytes]byte
	n, err := b64.Decode(buf[:], []byte(seg))
	if err != nil {
		return jws{}, newError(ErrMalformedToken, "the token header is not base64url without padding", nil)
	}
	h, err := claims.ParseHeader(buf[:n])
	if err != nil {
		return jws{}, malformed("the token header is not a valid JOSE header", err)
	}
	switch {
	case h.Nonce:
		return jws{}, newError(ErrGraphToken, "the token carries a nonce header: it is a Microsoft Graph token, not a token for this API", nil)
	case h.Algorithm != "RS256":
		return jws{}, newError(ErrUnsupportedAlgorithm, "only RS256-signed tokens are accepted", nil)
	case h.Critical:
		return jws{}, newError(ErrCriticalHeader, "the token header lists critical extensions (crit), which are not supported", nil)
	case h.KeyID == "":
		return jws{}, newError(ErrMissingKeyID, "the token header has no kid", nil)
	case len(h.KeyID) > maxKeyIDLength:
		return jws{}, newError(ErrMalformedToken, "the token's kid is too long", nil)
	}
	return jws{kid: h.KeyID, signingInput: raw[:second], payload: raw[first+1 : second], signature: raw[second+1:]}, nil
}

// decodePayload decodes the payload segment (strict base64url).
func (t *jws) decodePayload() ([]byte, *Error) {
	b, err := b64.DecodeString(t.payload)
	if err != nil {
		return nil, newError(ErrMalformedToken, "the token payload is not base64url without padding", nil)
	}
	return b, nil
}
