// Package claims holds the typed claims of a Microsoft Entra ID access token
// and the request-context accessors that carry them from the entragate
// middleware to HTTP handlers.
//
// One Claims value describes both token versions Entra issues: v1.0 tokens
// (appid, upn, unique_name) and v2.0 tokens (azp, preferred_username) are
// normalised into the same fields, so a handler does not care which version
// its API registration is configured for. Claims a handler needs that have no
// field here are reachable with Claims.Get and Claims.Decode.
//
// The package does no validation of signatures, issuers or lifetimes: a
// Claims value found in a request context was put there by the middleware
// after every check passed.
package claims

import (
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// Token versions, as carried in the ver claim.
const (
	Version1 = "1.0"
	Version2 = "2.0"
)

// ClientAuth says how the calling client application authenticated to Entra
// when it obtained the token (the azpacr claim of v2 tokens, appidacr of v1).
type ClientAuth string

// Values of ClientAuth, as defined by Entra.
const (
	ClientAuthPublic      ClientAuth = "0" // public client: no credential
	ClientAuthSecret      ClientAuth = "1" // confidential client with a client secret
	ClientAuthCertificate ClientAuth = "2" // confidential client with a certificate
)

// Claims is the normalised content of an Entra access token.
//
// Fields are empty when the token did not carry the claim. Entra documents
// that an API must not depend on optional claims being present.
//
// A *Claims the middleware hands out (from Validate, or FromContext in a
// handler) is the caller's own: the middleware keeps its own copy of a
// verified token's claims, so changing one changes no other request and no
// decision of the middleware. Copying a Claims value copies the struct
// but shares its lists; Clone copies them too.
type Claims struct {
	// Version is the ver claim: Version1 or Version2.
	Version string `json:"ver"`
	// Issuer is the iss claim, e.g. https://login.microsoftonline.com/{tid}/v2.0.
	Issuer string `json:"iss"`
	// Audience lists the aud claim's values. Entra issues a single string;
	// the JWT array form is accepted too.
	Audience []string `json:"aud"`

	// TenantID (tid) is the directory the caller signed in to.
	TenantID string `json:"tid,omitempty"`
	// ObjectID (oid) identifies the user or, for app-only tokens, the
	// client's service principal. Together with TenantID it is the stable key
	// for a principal; authorize on it, never on names or e-mail addresses.
	ObjectID string `json:"oid,omitempty"`
	// Subject (sub) is pairwise: unique per principal and per application.
	Subject string `json:"sub,omitempty"`

	// Name is the display name of the user (name claim).
	Name string `json:"name,omitempty"`
	// PreferredUsername is the v2 preferred_username claim. It is mutable and
	// must not be used for authorization decisions.
	PreferredUsername string `json:"preferred_username,omitempty"`
	// UPN (upn) and UniqueName (unique_name) are the v1 forms of the user's
	// sign-in name.
	UPN        string `json:"upn,omitempty"`
	UniqueName string `json:"unique_name,omitempty"`

	// ClientAppID is the application ID of the client that requested the
	// token: azp in v2 tokens; appid in v1 tokens (azp in Azure AD B2C's
	// v1.0 tokens). Every access token names its client; an ID token does
	// not.
	ClientAppID string `json:"client_app_id,omitempty"`
	// ClientAuth is how that client authenticated (azpacr or appidacr).
	ClientAuth ClientAuth `json:"client_auth,omitempty"`

	// Scopes are the delegated permissions (scp), split on the space
	// character only (RFC 6749 §3.3). They are present only when a user is
	// involved.
	Scopes []string `json:"scp,omitempty"`
	// Roles are app roles (roles): application permissions for app-only
	// tokens, or roles assigned to the signed-in user.
	Roles []string `json:"roles,omitempty"`
	// Groups are group object IDs (groups), when the API asks for them.
	Groups []string `json:"groups,omitempty"`
	// GroupOverage is true when the user is in too many groups for the
	// token to list them (Entra's overage: _claim_names names a source for
	// groups, or hasgroups is true): Groups is then empty, and the groups
	// must be read from Microsoft Graph. It tells "too many to list" from
	// "no groups", which an empty Groups alone does not.
	GroupOverage bool `json:"group_overage,omitempty"`
	// DirectoryRoles are the wids claim: tenant-wide role template IDs.
	DirectoryRoles []string `json:"wids,omitempty"`
	// TokenType is the idtyp optional claim: "app" for app-only tokens,
	// "user" for delegated ones, empty when the API did not request it.
	TokenType string `json:"idtyp,omitempty"`
	// IdentityProvider (idp) is the authority that authenticated the user
	// when it differs from the issuer, e.g. for guests.
	IdentityProvider string `json:"idp,omitempty"`
	// TokenID is the uti claim, Entra's unique token identifier.
	TokenID string `json:"uti,omitempty"`
	// ClientCapabilities is xms_cc, e.g. ["cp1"] for clients that handle
	// claims challenges. Entra puts it in access tokens only when the
	// API's registration asks for the xms_cc optional claim.
	ClientCapabilities []string `json:"xms_cc,omitempty"`
	// AuthContexts are the Conditional Access authentication contexts the
	// user satisfied (acrs), e.g. ["c1"].
	AuthContexts []string `json:"acrs,omitempty"`
	// AccountStatus is the acct optional claim: AccountMember (0) or
	// AccountGuest (1); nil when the token does not carry it.
	AccountStatus *int `json:"acct,omitempty"`
	// Policy is the Azure AD B2C user flow or custom policy that issued the
	// token (tfp). B2C tokens configured without tfp name it in acr instead.
	Policy string `json:"tfp,omitempty"`
	// ACR is the acr claim: the authentication context class of v1 Entra
	// tokens ("0" or "1"), or the policy name in B2C tokens without tfp.
	ACR string `json:"acr,omitempty"`

	// Claims of ID tokens (OpenID Connect). Access tokens for an API do not
	// carry them, except the e-mail address when configured.

	// Email is the email claim.
	Email string `json:"email,omitempty"`
	// Nonce is the value the signing-in app sent with its authorization
	// request; it ties an ID token to that request.
	Nonce string `json:"nonce,omitempty"`
	// SessionID (sid) identifies the user's sign-in session.
	SessionID string `json:"sid,omitempty"`
	// LoginHint is the login_hint optional claim, to pass to Entra for a
	// silent sign-in or sign-out of the same account.
	LoginHint string `json:"login_hint,omitempty"`
	// AuthTime is when the user last entered credentials (auth_time).
	AuthTime time.Time `json:"auth_time,omitzero"`

	IssuedAt  time.Time `json:"iat,omitzero"`
	NotBefore time.Time `json:"nbf,omitzero"`
	ExpiresAt time.Time `json:"exp,omitzero"`

	// idTokenMarkers is set when the payload carries nonce, at_hash or
	// c_hash, which only ID tokens carry.
	idTokenMarkers bool

	// raw is the token payload, kept so that claims without a field stay
	// reachable. It is decoded into a map only when first asked for.
	payload *payload
}

// Values of Claims.AccountStatus, as defined by Entra's acct claim.
const (
	AccountMember = 0
	AccountGuest  = 1
)

// payload is behind a pointer so that Claims values can be copied freely.
type payload struct {
	raw  []byte
	once sync.Once
	m    map[string]json.RawMessage
	err  error
}

// HasScope reports whether the token grants the delegated scope. The match
// is exact and case-sensitive, as Entra's scope values are.
func (c *Claims) HasScope(scope string) bool {
	return c != nil && slices.Contains(c.Scopes, scope)
}

// HasAuthContext reports whether the user satisfied the Conditional Access
// authentication context id (acrs), e.g. "c1". IDs match exactly.
func (c *Claims) HasAuthContext(id string) bool {
	return c != nil && slices.Contains(c.AuthContexts, id)
}

// CanHandleClaimsChallenges reports whether the client declared the cp1
// capability (xms_cc, case-insensitive): that it can act on a claims
// challenge by asking Entra for a new token with the claims it names.
func (c *Claims) CanHandleClaimsChallenges() bool {
	return c != nil && slices.ContainsFunc(c.ClientCapabilities, func(s string) bool { return strings.EqualFold(s, "cp1") })
}

// HasRole reports whether the token carries the app role (exact,
// case-sensitive match).
func (c *Claims) HasRole(role string) bool {
	return c != nil && slices.Contains(c.Roles, role)
}

// IsAppOnly reports whether the token was issued to an application acting
// on its own behalf (client credentials), with no signed-in user.
//
// The idtyp optional claim is authoritative when the API requested it;
// otherwise the absence of delegated scopes decides, because Entra includes
// scp only in tokens issued for a user.
func (c *Claims) IsAppOnly() bool {
	if c == nil {
		return false
	}
	switch c.TokenType {
	case "app":
		return true
	case "user":
		return false
	}
	return len(c.Scopes) == 0
}

// HasIDTokenClaims reports whether the token carries a claim that only
// OpenID Connect ID tokens carry: nonce, at_hash or c_hash. An API must not
// accept such a token as an access token.
func (c *Claims) HasIDTokenClaims() bool { return c != nil && c.idTokenMarkers }

// IsGuest reports whether the token is a guest's (a B2B user signed in to a
// tenant other than their home tenant), as Entra marks them: the acct
// claim is 1, or the idp claim names an identity provider other than the
// token's own tenant (another tenant, a Microsoft account, a social or
// e-mail one-time-passcode provider).
func (c *Claims) IsGuest() bool {
	if c == nil {
		return false
	}
	if c.AccountStatus != nil && *c.AccountStatus == AccountGuest {
		return true
	}
	if c.IdentityProvider == "" || c.TenantID == "" {
		return false
	}
	return !identityProviderIsTenant(c.IdentityProvider, c.TenantID)
}

// identityProviderIsTenant reports whether idp names tenant tid: Entra
// writes a token service URL whose first path segment is a tenant ID, e.g.
// https://sts.windows.net/{tid}/ or https://login.microsoftonline.com/{tid}/v2.0.
func identityProviderIsTenant(idp, tid string) bool {
	u, err := url.Parse(idp)
	if err != nil || u.Host == "" {
		return false // live.com, mail, google.com...
	}
	first, _, _ := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
	return strings.EqualFold(first, tid)
}

// Username returns the user's sign-in name: preferred_username for v2
// tokens, upn or unique_name for v1 tokens. It is for display and logs only.
func (c *Claims) Username() string {
	switch {
	case c == nil:
		return ""
	case c.PreferredUsername != "":
		return c.PreferredUsername
	case c.UPN != "":
		return c.UPN
	}
	return c.UniqueName
}

// Get returns a copy of the raw JSON value of any claim in the token, or
// false if the token does not carry it.
func (c *Claims) Get(name string) (json.RawMessage, bool) {
	m, err := c.claimMap()
	if err != nil {
		return nil, false
	}
	v, ok := m[name]
	return slices.Clone(v), ok
}

// Decode unmarshals the named claim into v. It returns ErrClaimNotFound when
// the token does not carry the claim.
func (c *Claims) Decode(name string, v any) error {
	m, err := c.claimMap()
	if err != nil {
		return err
	}
	raw, ok := m[name]
	if !ok {
		return ErrClaimNotFound
	}
	return json.Unmarshal(raw, v)
}

// Raw returns a copy of the token's JSON payload.
func (c *Claims) Raw() []byte {
	if c == nil || c.payload == nil {
		return nil
	}
	return slices.Clone(c.payload.raw)
}

// Clone returns a copy of c that shares nothing changeable with it: its
// lists and AccountStatus are its own. The token's payload, which Get,
// Decode and Raw read, is immutable and shared.
func (c *Claims) Clone() *Claims {
	if c == nil {
		return nil
	}
	n := &struct {
		c       Claims
		strings [inlineStrings]string
		acct    int
	}{}
	c.copyTo(&n.c, n.strings[:0], &n.acct)
	return &n.c
}

// inlineStrings is how many list elements a copy holds without another
// allocation: an Entra token's aud, scp, roles, wids and xms_cc together
// rarely exceed it. With 16 the context node NewContext allocates would
// round up to Go's 1,024-byte size class; with 15 it fits the 896-byte one
// (the node is about 13% smaller, and so is the collector's work for it).
const inlineStrings = 15

// copyTo copies c into dst, its lists into buf while it has room (each
// with no spare capacity, so that appending to one never writes over
// another), and AccountStatus into acct.
func (c *Claims) copyTo(dst *Claims, buf []string, acct *int) {
	*dst = *c
	for _, list := range []*[]string{&dst.Audience, &dst.Scopes, &dst.Roles, &dst.Groups, &dst.DirectoryRoles, &dst.ClientCapabilities, &dst.AuthContexts} {
		if *list == nil {
			continue
		}
		if len(buf)+len(*list) > cap(buf) {
			*list = slices.Clone(*list)
			continue
		}
		start := len(buf)
		buf = append(buf, *list...)
		*list = buf[start:len(buf):len(buf)]
	}
	if c.AccountStatus != nil {
		*acct = *c.AccountStatus
		dst.AccountStatus = acct
	}
}

func (c *Claims) claimMap() (map[string]json.RawMessage, error) {
	if c == nil || c.payload == nil {
		return nil, nil
	}
	p := c.payload
	p.once.Do(func() { p.err = json.Unmarshal(p.raw, &p.m) })
	return p.m, p.err
}
