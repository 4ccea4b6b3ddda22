package claims

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// ErrClaimNotFound is returned by Claims.Decode for a claim the token does
// not carry.
var ErrClaimNotFound = errors.New("claims: claim not found")

// ErrMalformed is wrapped by every error Parse and ParseHeader return, all
// of them *ParseError.
var ErrMalformed = errors.New("claims: malformed token")

// ParseError is a token payload or header that Parse or ParseHeader
// refused. It names what is wrong without quoting the token's values, so
// its Error() text may be sent to the caller; errors.Is(err, ErrMalformed)
// holds.
type ParseError struct {
	// Header is true for the JOSE header, false for the claims payload.
	Header bool
	// Name is the claim or header member at fault, "" when the document
	// as a whole is (not JSON, not an object).
	Name string
	// Problem says what is wrong, e.g. "has the wrong JSON type".
	Problem string
}

func (e *ParseError) Error() string {
	part, what := "payload", "claim"
	if e.Header {
		part, what = "header", "member"
	}
	if e.Name == "" {
		return "claims: malformed token " + part + ": " + e.Problem
	}
	return fmt.Sprintf("claims: malformed token %s: %s %q %s", part, what, e.Name, e.Problem)
}

// Unwrap makes errors.Is(err, ErrMalformed) hold.
func (e *ParseError) Unwrap() error { return ErrMalformed }

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
// Claim names match exactly ("AUD" is not aud, whatever encoding/json
// would do), and a payload naming a claim twice is refused (RFC 7519 §4).
// Parse checks types only. Whether the token is valid is the middleware's
// decision, which also verifies its signature.
func Parse(raw []byte) (*Claims, error) {
	var w wireClaims
	if err := decodeWire(raw, &w); err != nil {
		return nil, err
	}
	// One allocation for the claims and the payload they keep.
	alloc := &struct {
		c Claims
		p payload
	}{p: payload{raw: bytes.Clone(raw)}}
	w.fill(&alloc.c)
	alloc.c.payload = &alloc.p
	return &alloc.c, nil
}

// fill sets c from the wire claims, v1 and v2 forms normalised.
func (w *wireClaims) fill(c *Claims) {
	*c = Claims{
		Version: w.Ver, Issuer: w.Iss, Audience: []string(w.Aud),
		TenantID: w.Tid, ObjectID: w.Oid, Subject: w.Sub,
		Name: w.Name, PreferredUsername: w.PreferredUsername, UPN: w.Upn, UniqueName: w.UniqueName,
		ClientAppID: w.Azp, ClientAuth: ClientAuth(w.Azpacr),
		Roles: w.Roles, Groups: w.Groups, DirectoryRoles: w.Wids, TokenType: w.Idtyp,
		IdentityProvider: w.Idp, TokenID: w.Uti, ClientCapabilities: w.XmsCc, AuthContexts: w.Acrs, AccountStatus: w.Acct,
		Policy: w.Tfp, ACR: w.Acr, Email: w.Email, SessionID: w.Sid, LoginHint: w.LoginHint,
		IssuedAt: w.Iat.t, NotBefore: w.Nbf.t, ExpiresAt: w.Exp.t, AuthTime: w.AuthTime.t,
		idTokenMarkers: w.Nonce != nil || w.AtHash != nil || w.CHash != nil,
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
	// Group overage: v1 tokens name an external source for groups, tokens
	// from the implicit flow say hasgroups instead of listing them.
	if _, ok := w.ClaimNames["groups"]; ok || w.HasGroups {
		c.GroupOverage = true
	}
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
	Acrs              []string                   `json:"acrs"`
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
		return &ParseError{Name: n.claimName(), Problem: err.Error()}
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
	switch {
	case len(b) > 0 && b[0] == '"':
		s, err := jsonString(b)
		if err != nil {
			return err
		}
		*a = audience{s}
		return nil
	case len(b) > 0 && b[0] == '[' && json.Valid(b):
		var list []string
		if err := setStrings(&list, b); err != nil {
			return err
		}
		*a = list
		return nil
	}
	return errors.New("must be a string or an array of strings")
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
		return time.Time{}, errors.New("must be a NumericDate between 0 and year 9999")
	}
	var v int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return time.Time{}, errors.New("must be a JSON integer (a NumericDate)")
		}
		v = v*10 + int64(c-'0')
	}
	if v > maxNumericDate {
		return time.Time{}, errors.New("must be a NumericDate between 0 and year 9999")
	}
	return time.Unix(v, 0).UTC(), nil
}
