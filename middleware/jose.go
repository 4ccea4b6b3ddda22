package middleware

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
)

// Limits on the JOSE header. Entra's headers are under 200 bytes.
const (
	maxHeaderBytes  = 2048
	maxKeyIDLength  = 256
	maxHeaderFields = 32
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
// member names, strict base64url, and Graph's nonce.
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
	h, err := decodeHeader(buf[:n])
	if err != nil {
		return jws{}, newError(ErrMalformedToken, "the token header is not a valid JSON object: "+err.Error(), nil)
	}
	switch {
	case h.nonce:
		return jws{}, newError(ErrGraphToken, "the token carries a nonce header: it is a Microsoft Graph token, not a token for this API", nil)
	case h.alg != "RS256":
		return jws{}, newError(ErrUnsupportedAlgorithm, "only RS256-signed tokens are accepted", nil)
	case h.crit:
		return jws{}, newError(ErrCriticalHeader, "the token header lists critical extensions (crit), which are not supported", nil)
	case h.kid == "":
		return jws{}, newError(ErrMissingKeyID, "the token header has no kid", nil)
	case len(h.kid) > maxKeyIDLength:
		return jws{}, newError(ErrMalformedToken, "the token's kid is too long", nil)
	}
	return jws{kid: h.kid, signingInput: raw[:second], payload: raw[first+1 : second], signature: raw[second+1:]}, nil
}

// decodePayload decodes the payload segment (strict base64url).
func (t *jws) decodePayload() ([]byte, *Error) {
	b, err := b64.DecodeString(t.payload)
	if err != nil {
		return nil, newError(ErrMalformedToken, "the token payload is not base64url without padding", nil)
	}
	return b, nil
}

type joseHeader struct {
	alg, kid    string
	crit, nonce bool
}

var errDuplicateMember = errors.New("duplicate member name")

// decodeHeader reads the header object member by member, refusing duplicate
// names, exactly or under case folding (RFC 7515 §4: a JWS with duplicate
// header names may be rejected; "kid" and "KID" are one name to
// encoding/json), and
// non-string alg or kid. It scans the JSON once; values other than alg and
// kid are skipped, not decoded.
func decodeHeader(b []byte) (joseHeader, error) {
	var h joseHeader
	if !json.Valid(b) {
		return h, errors.New("invalid JSON")
	}
	// b is valid JSON from here on, so the scanner can be simple.
	i := skipSpace(b, 0)
	if b[i] != '{' {
		return h, errors.New("not an object")
	}
	i = skipSpace(b, i+1)
	var names [maxHeaderFields]string
	count := 0
	for b[i] != '}' {
		end := skipValue(b, i)
		name, err := unquote(b[i:end])
		if err != nil {
			return h, err
		}
		for _, seen := range names[:count] {
			// Under case folding too, as encoding/json matches names.
			if strings.EqualFold(seen, name) {
				return h, errDuplicateMember
			}
		}
		if count == maxHeaderFields {
			return h, errors.New("too many members")
		}
		names[count] = name
		count++
		i = skipSpace(b, end)
		i = skipSpace(b, i+1) // the colon
		end = skipValue(b, i)
		value := b[i:end]
		switch name {
		case "alg", "kid":
			if value[0] != '"' {
				return h, errors.New(name + " must be a string")
			}
			s := "RS256" // the usual alg, without a copy
			if name != "alg" || string(value) != `"RS256"` {
				var err error
				if s, err = unquote(value); err != nil {
					return h, err
				}
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
		i = skipSpace(b, end)
		if b[i] == ',' {
			i = skipSpace(b, i+1)
		}
	}
	return h, nil
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipValue returns the index just past the JSON value starting at b[i].
// b must be valid JSON.
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		for j := i + 1; j < len(b); j++ {
			switch b[j] {
			case '\\':
				j++
			case '"':
				return j + 1
			}
		}
		return len(b)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				j = skipValue(b, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return len(b)
	}
	j := i
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\t' && b[j] != '\n' && b[j] != '\r' {
		j++
	}
	return j
}

// unquote decodes a JSON string literal; escapes are decoded too, so that
// "k\u0069d" is kid, and a duplicate, as any JSON parser would read it.
func unquote(lit []byte) (string, error) {
	if len(lit) < 2 || lit[0] != '"' {
		return "", errors.New("member names must be strings")
	}
	inner := lit[1 : len(lit)-1]
	for _, c := range inner {
		if c == '\\' {
			var s string
			if err := json.Unmarshal(lit, &s); err != nil {
				return "", errors.New("invalid string")
			}
			return s, nil
		}
	}
	return string(inner), nil
}
