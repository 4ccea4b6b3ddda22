package claims

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
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
//   - exp, nbf and iat must be JSON numbers (RFC 7519 NumericDate), not
//     strings, within 0 and year 9999;
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
	var w wireClaims
	if err := json.Unmarshal(raw, &w); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, describeJSONError(err))
	}
	c := &Claims{
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
		IssuedAt:           w.Iat.time(),
		NotBefore:          w.Nbf.time(),
		ExpiresAt:          w.Exp.time(),
		payload:            &payload{raw: bytes.Clone(raw)},
	}
	if c.ClientAppID == "" {
		c.ClientAppID = w.Appid
	}
	if c.ClientAuth == "" {
		c.ClientAuth = ClientAuth(w.Appidacr)
	}
	if w.Scp != "" {
		c.Scopes = strings.Fields(w.Scp)
	}
	// Group overage: v1 tokens name an external source for groups, tokens from
	// the implicit flow say hasgroups instead of listing them.
	if _, ok := w.ClaimNames["groups"]; ok || w.HasGroups {
		c.GroupOverage = true
	}
	return c, nil
}

// wireClaims mirrors the JSON of an Entra access token. Field types are what
// Entra issues; a value of another type makes decoding fail.
type wireClaims struct {
	Ver               string            `json:"ver"`
	Iss               string            `json:"iss"`
	Aud               audience          `json:"aud"`
	Tid               string            `json:"tid"`
	Oid               string            `json:"oid"`
	Sub               string            `json:"sub"`
	Name              string            `json:"name"`
	PreferredUsername string            `json:"preferred_username"`
	Upn               string            `json:"upn"`
	UniqueName        string            `json:"unique_name"`
	Azp               string            `json:"azp"`
	Azpacr            string            `json:"azpacr"`
	Appid             string            `json:"appid"`
	Appidacr          string            `json:"appidacr"`
	Scp               string            `json:"scp"`
	Roles             []string          `json:"roles"`
	Groups            []string          `json:"groups"`
	Wids              []string          `json:"wids"`
	Idtyp             string            `json:"idtyp"`
	Idp               string            `json:"idp"`
	Uti               string            `json:"uti"`
	XmsCc             []string          `json:"xms_cc"`
	HasGroups         bool              `json:"hasgroups"`
	ClaimNames        map[string]string `json:"_claim_names"`
	Iat               *numericDate      `json:"iat"`
	Nbf               *numericDate      `json:"nbf"`
	Exp               *numericDate      `json:"exp"`
}

// audience accepts the two forms RFC 7519 allows for aud.
type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
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

// numericDate is an RFC 7519 NumericDate held as Unix seconds. Unlike
// golang-jwt's type it refuses a JSON string holding a number.
type numericDate struct{ unix float64 }

func (d *numericDate) UnmarshalJSON(b []byte) error {
	if len(b) == 0 || (b[0] != '-' && (b[0] < '0' || b[0] > '9')) {
		return errors.New("NumericDate claims must be JSON numbers")
	}
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return errors.New("NumericDate claims must be JSON numbers")
	}
	if math.IsNaN(f) || f < 0 || f > maxNumericDate {
		return errors.New("NumericDate claim out of range")
	}
	d.unix = f
	return nil
}

func (d *numericDate) time() time.Time {
	if d == nil {
		return time.Time{}
	}
	sec, frac := math.Modf(d.unix)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC()
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
	msg := err.Error()
	return strings.TrimPrefix(msg, "json: ")
}
