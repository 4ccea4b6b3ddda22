package claims

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"
	"unicode/utf8"
)

// ErrClaimNotFound is returned by Claims.Decode for a claim the token does
// not carry.
var ErrClaimNotFound = errors.New("claims: claim not found")

// ErrMalformed is wrapped by every error Parse returns.
var ErrMalformed = errors.New("claims: malformed token payload")

// maxNumericDate is 9999-12-31T23:59:59Z. Larger values are not dates an
// identity provider issues; accepting them would let a token never expire.
const maxNumericDate = 253402300799

// Parse decodes a token payload (the JSON of the second JWT segment) into
// Claims. It enforces the JSON types Entra uses, so that an unexpected shape
// is an error rather than a silently empty field:
//
//   - exp, nbf and iat must be JSON integers (RFC 7519 NumericDate, as Entra
//     writes them), not strings, fractions or exponents, within year 9999;
//   - aud is a string or an array of strings;
//   - scp is one space-separated string; roles, groups and wids are arrays
//     of strings.
//
// Parse checks types only. Whether the token is valid is the middleware's
// decision, which also verifies its signature.
func Parse(raw []byte) (*Claims, error) {
	if trimmed := bytes.TrimSpace(raw); len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, fmt.Errorf("%w: payload is not a JSON object", ErrMalformed)
	}
	src := raw
	if hasFoldedClaimName(raw) {
		// encoding/json matches member names case-insensitively, so "AUD"
		// or "Scp" would be read as aud or scp, and the token would mean
		// one thing to us and another to every other parser. Decode from
		// the members whose names match exactly.
		exact, err := exactClaims(raw)
		if err != nil {
			return nil, err
		}
		src = exact
	}
	var w wireClaims
	if err := json.Unmarshal(src, &w); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, describeJSONError(err))
	}
	// One allocation for the claims and the payload they keep.
	alloc := &struct {
		c Claims
		p payload
	}{p: payload{raw: bytes.Clone(raw)}}
	c := &alloc.c
	*c = Claims{
		Version:            w.Ver,
		Issuer:             w.Iss,
		Audience:           []string(w.Aud),
		TenantID:           w.Tid,
		ObjectID:           w.Oid,
		Subject:            w.Sub,
		Name:               w.Name,
		PreferredUsername:  w.PreferredUsername,
		UPN:                w.Upn,
		UniqueName:         w.UniqueName,
		ClientAppID:        w.Azp,
		ClientAuth:         ClientAuth(w.Azpacr),
		Roles:              w.Roles,
		Groups:             w.Groups,
		DirectoryRoles:     w.Wids,
		TokenType:          w.Idtyp,
		IdentityProvider:   w.Idp,
		TokenID:            w.Uti,
		ClientCapabilities: w.XmsCc,
		AccountStatus:      w.Acct,
		Policy:             w.Tfp,
		ACR:                w.Acr,
		Email:              w.Email,
		SessionID:          w.Sid,
		LoginHint:          w.LoginHint,
		IssuedAt:           w.Iat.t,
		NotBefore:          w.Nbf.t,
		ExpiresAt:          w.Exp.t,
		AuthTime:           w.AuthTime.t,
		idTokenMarkers:     w.Nonce != nil || w.AtHash != nil || w.CHash != nil,
		payload:            &alloc.p,
	}
	if w.Nonce != nil {
		// A nonce that is not a string is kept out of the typed field; the
		// marker above still records that the token carries one.
		_ = json.Unmarshal(w.Nonce, &c.Nonce)
	}
	// The client application is azp in v2 tokens and appid in v1 tokens: a
	// v2 token naming its client in appid does not name it the way Entra
	// does. Azure AD B2C's v1.0 tokens name it in azp.
	if w.Ver != Version2 && w.Appid != "" {
		c.ClientAppID, c.ClientAuth = w.Appid, ClientAuth(w.Appidacr)
	}
	if w.Scp != "" {
		c.Scopes = splitScopes(w.Scp)
	}
	// Group overage: v1 tokens name an external source for groups, tokens from
	// the implicit flow say hasgroups instead of listing them.
	if _, ok := w.ClaimNames["groups"]; ok || w.HasGroups {
		c.GroupOverage = true
	}
	return c, nil
}

// splitScopes splits scp on the space character only: RFC 6749 §3.3
// delimits scope tokens with %x20, and Microsoft.Identity.Web splits on it
// alone. Splitting on other white space (tab, NBSP, U+2003...) would turn
// "Read\u00a0Admin" into a scope Admin that was never granted.
func splitScopes(scp string) []string {
	n := 1 + strings.Count(scp, " ")
	out := make([]string, 0, n)
	for s := range strings.SplitSeq(scp, " ") {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// wireClaims mirrors the JSON of an Entra access token. Field types are what
// Entra issues; a value of another type makes decoding fail.
type wireClaims struct {
	Ver               string                     `json:"ver"`
	Iss               string                     `json:"iss"`
	Aud               audience                   `json:"aud"`
	Tid               string                     `json:"tid"`
	Oid               string                     `json:"oid"`
	Sub               string                     `json:"sub"`
	Name              string                     `json:"name"`
	PreferredUsername string                     `json:"preferred_username"`
	Upn               string                     `json:"upn"`
	UniqueName        string                     `json:"unique_name"`
	Azp               string                     `json:"azp"`
	Azpacr            string                     `json:"azpacr"`
	Appid             string                     `json:"appid"`
	Appidacr          string                     `json:"appidacr"`
	Scp               string                     `json:"scp"`
	Roles             []string                   `json:"roles"`
	Groups            []string                   `json:"groups"`
	Wids              []string                   `json:"wids"`
	Idtyp             string                     `json:"idtyp"`
	Idp               string                     `json:"idp"`
	Uti               string                     `json:"uti"`
	XmsCc             []string                   `json:"xms_cc"`
	HasGroups         bool                       `json:"hasgroups"`
	Acct              *int                       `json:"acct"`
	Tfp               string                     `json:"tfp"`
	Acr               string                     `json:"acr"`
	Email             string                     `json:"email"`
	Sid               string                     `json:"sid"`
	LoginHint         string                     `json:"login_hint"`
	Nonce             json.RawMessage            `json:"nonce"`
	AtHash            json.RawMessage            `json:"at_hash"`
	CHash             json.RawMessage            `json:"c_hash"`
	AuthTime          numericDate[authTimeClaim] `json:"auth_time"`
	ClaimNames        map[string]string          `json:"_claim_names"`
	Iat               numericDate[iatClaim]      `json:"iat"`
	Nbf               numericDate[nbfClaim]      `json:"nbf"`
	Exp               numericDate[expClaim]      `json:"exp"`
}

// numericDate is a NumericDate claim decoded in place (no copy of its
// bytes); N names the claim in errors.
type numericDate[N interface{ claimName() string }] struct{ t time.Time }

func (d *numericDate[N]) UnmarshalJSON(b []byte) error {
	t, err := parseNumericDate(b)
	if err != nil {
		var n N
		return fmt.Errorf("claim %q: %v", n.claimName(), err)
	}
	d.t = t
	return nil
}

type (
	iatClaim      struct{}
	nbfClaim      struct{}
	expClaim      struct{}
	authTimeClaim struct{}
)

func (iatClaim) claimName() string      { return "iat" }
func (nbfClaim) claimName() string      { return "nbf" }
func (expClaim) claimName() string      { return "exp" }
func (authTimeClaim) claimName() string { return "auth_time" }

// audience accepts the two forms RFC 7519 allows for aud.
type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	if s, ok := plainString(b); ok {
		*a = audience{s}
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*a = audience{s}
		return nil
	}
	if len(b) > 0 && b[0] == '[' {
		var list []string
		if err := json.Unmarshal(b, &list); err != nil {
			return err
		}
		*a = list
		return nil
	}
	return errors.New("aud must be a string or an array of strings")
}

// plainString decodes a JSON string literal without escapes, the usual
// form, the way encoding/json would, without its machinery. ok is false
// for anything else (escapes, invalid UTF-8, not a string), which the
// caller hands to encoding/json.
func plainString(b []byte) (string, bool) {
	if len(b) < 2 || b[0] != '"' || b[len(b)-1] != '"' {
		return "", false
	}
	inner := b[1 : len(b)-1]
	ascii := true
	for _, c := range inner {
		switch {
		case c == '\\' || c == '"' || c < 0x20:
			return "", false
		case c >= 0x80:
			ascii = false
		}
	}
	if !ascii && !utf8.Valid(inner) {
		return "", false // encoding/json would replace the invalid bytes
	}
	return string(inner), true
}

// parseNumericDate reads an RFC 7519 NumericDate. Entra writes them as
// plain integers; anything else (a string holding a number, which
// golang-jwt accepts, a fraction, an exponent, a negative or a far-future
// value) is refused, so that no two parsers can read the same token
// differently.
func parseNumericDate(b []byte) (time.Time, error) {
	if len(b) == 0 || len(b) > 12 {
		return time.Time{}, errors.New("NumericDate must be an integer between 0 and year 9999")
	}
	var v int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return time.Time{}, errors.New("NumericDate must be a JSON integer")
		}
		v = v*10 + int64(c-'0')
	}
	if v > maxNumericDate {
		return time.Time{}, errors.New("NumericDate must be an integer between 0 and year 9999")
	}
	return time.Unix(v, 0).UTC(), nil
}

// describeJSONError names the offending claim without echoing token content.
func describeJSONError(err error) string {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) && typeErr.Field != "" {
		return fmt.Sprintf("claim %q has the wrong JSON type", typeErr.Field)
	}
	var syntaxErr *json.SyntaxError
	if errors.As(err, &syntaxErr) {
		return "payload is not valid JSON"
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

// claimNames are the JSON names wireClaims reads.
var claimNames = func() []string {
	t := reflect.TypeFor[wireClaims]()
	names := make([]string, t.NumField())
	for i := range names {
		names[i], _, _ = strings.Cut(t.Field(i).Tag.Get("json"), ",")
	}
	return names
}()

// hasFoldedClaimName reports whether a top-level member name of the JSON
// object b is not exactly one of claimNames but encoding/json would still
// match it to one (a case or Unicode-folding variant), or is written with
// escapes. For invalid JSON the answer does not matter: decoding fails. Entra's names are lower-case ASCII, so the
// usual token costs one pass over its bytes.
func hasFoldedClaimName(b []byte) bool {
	depth := 0
	expectKey := false
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '"':
			j, escaped := i+1, false
			for j < len(b) && b[j] != '"' {
				if b[j] == '\\' {
					escaped = true
					j++
				}
				j++
			}
			if depth == 1 && expectKey {
				if escaped || foldsToClaimName(b[i+1:j]) {
					return true
				}
				expectKey = false
			}
			i = j
		case '{', '[':
			depth++
			expectKey = depth == 1
		case '}', ']':
			depth--
		case ',':
			expectKey = depth == 1
		}
	}
	return false
}

func foldsToClaimName(key []byte) bool {
	plain := true
	for _, c := range key {
		if c >= 'A' && c <= 'Z' || c >= 0x80 {
			plain = false
			break
		}
	}
	if plain {
		return false // lower-case ASCII matches only itself
	}
	for _, name := range claimNames {
		if bytes.EqualFold(key, []byte(name)) {
			return true
		}
	}
	return false
}

// exactClaims re-encodes the members of b whose names are exactly claim
// names, so that a struct decode cannot pick up folded variants.
func exactClaims(b []byte) ([]byte, error) {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(b, &members); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, describeJSONError(err))
	}
	exact := make(map[string]json.RawMessage, len(claimNames))
	for _, name := range claimNames {
		if v, ok := members[name]; ok {
			exact[name] = v
		}
	}
	return json.Marshal(exact)
}
