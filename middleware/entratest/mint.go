package entratest

import (
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// DefaultScope is the delegated scope of minted user tokens unless Scopes is
// given: the name the Azure portal suggests when exposing an API.
const DefaultScope = "access_as_user"

// DefaultLifetime is the lifetime of minted tokens. Entra picks 60 to 90
// minutes at random; tests want a fixed value.
const DefaultLifetime = 75 * time.Minute

// TokenOption changes a minted token. Options apply in order, after the
// defaults of the token kind, so a later option wins.
type TokenOption func(*tokenSpec)

type tokenSpec struct {
	version     string
	kind        kind
	issued      time.Time
	life        time.Duration
	expired     bool
	key         *Key
	claimEdits  []func(s *tokenSpec, claims map[string]any)
	headerEdits []func(header map[string]any)
	t           *Tenant
}

type kind int

const (
	delegated kind = iota
	appOnly
	idToken
)

func editClaims(f func(s *tokenSpec, claims map[string]any)) TokenOption {
	return func(s *tokenSpec) { s.claimEdits = append(s.claimEdits, f) }
}

// V1 mints a v1.0 token: sts.windows.net issuer, api:// audience, appid,
// upn and unique_name, an x5t header. Tokens are v2.0 by default.
func V1() TokenOption { return func(s *tokenSpec) { s.version = "1.0" } }

// Scopes sets scp (space-joined). With no arguments scp is removed.
func Scopes(scopes ...string) TokenOption {
	return editClaims(func(_ *tokenSpec, c map[string]any) {
		if len(scopes) == 0 {
			delete(c, "scp")
			return
		}
		c["scp"] = strings.Join(scopes, " ")
	})
}

// Roles sets the roles array. With no arguments roles is removed.
func Roles(roles ...string) TokenOption {
	return editClaims(func(_ *tokenSpec, c map[string]any) {
		if len(roles) == 0 {
			delete(c, "roles")
			return
		}
		c["roles"] = roles
	})
}

// Groups sets the groups array.
func Groups(ids ...string) TokenOption { return Claim("groups", ids) }

// GroupOverageLimit is the most groups Entra lists in a JWT; a user in more
// gets GroupOverage's claims instead.
const GroupOverageLimit = 200

// GroupOverage mints the token of a user in more groups than a JWT lists:
// no groups claim, and _claim_names and _claim_sources pointing at the
// user's memberships, as Entra marks overage.
func GroupOverage() TokenOption {
	return editClaims(func(s *tokenSpec, c map[string]any) { s.setOverage(c) })
}

// AuthContexts sets acrs: the Conditional Access authentication contexts
// the user satisfied, e.g. "c1".
func AuthContexts(ids ...string) TokenOption { return Claim("acrs", ids) }

// ClientCapabilities sets xms_cc, e.g. "cp1" for a client that handles
// claims challenges.
func ClientCapabilities(caps ...string) TokenOption { return Claim("xms_cc", caps) }

// Audience sets aud; pass a string or a []string.
func Audience(aud any) TokenOption { return Claim("aud", aud) }

// Issuer sets iss.
func Issuer(iss string) TokenOption { return Claim("iss", iss) }

// Claim sets any claim to any JSON-encodable value, overriding defaults,
// e.g. Claim("exp", "1700000000") for a NumericDate sent as a string.
func Claim(name string, value any) TokenOption {
	return editClaims(func(_ *tokenSpec, c map[string]any) { c[name] = value })
}

// WithoutClaim removes claims from the token.
func WithoutClaim(names ...string) TokenOption {
	return editClaims(func(_ *tokenSpec, c map[string]any) {
		for _, n := range names {
			delete(c, n)
		}
	})
}

// Header sets a JOSE header member. Setting alg changes only the header,
// not how the token is signed: that is what tests of alg confusion need.
func Header(name string, value any) TokenOption {
	return func(s *tokenSpec) {
		s.headerEdits = append(s.headerEdits, func(h map[string]any) { h[name] = value })
	}
}

// WithoutHeader removes JOSE header members, e.g. kid.
func WithoutHeader(names ...string) TokenOption {
	return func(s *tokenSpec) {
		s.headerEdits = append(s.headerEdits, func(h map[string]any) {
			for _, n := range names {
				delete(h, n)
			}
		})
	}
}

// SignedWith signs with k instead of the server's signing key; kid follows
// k. Use Server.NewKey for a key the tenant never published.
func SignedWith(k *Key) TokenOption { return func(s *tokenSpec) { s.key = k } }

// IssuedAt sets when the token was issued: iat and nbf are t, exp is t plus
// the lifetime.
func IssuedAt(t time.Time) TokenOption { return func(s *tokenSpec) { s.issued = t } }

// Lifetime sets exp to iat plus d.
func Lifetime(d time.Duration) TokenOption { return func(s *tokenSpec) { s.life = d } }

// Expired mints a token that expired an hour ago, beyond any clock skew.
func Expired() TokenOption { return func(s *tokenSpec) { s.expired = true } }

// ForUser mints a delegated or ID token for u instead of the tenant's user.
func ForUser(u User) TokenOption {
	return editClaims(func(s *tokenSpec, c map[string]any) { s.setUser(c, u) })
}

// Nonce sets the nonce of an ID token: the value the signing-in app sent.
func Nonce(nonce string) TokenOption { return Claim("nonce", nonce) }

// Guest mints a token for a guest (B2B) user whose home is tenant home, the
// way Entra marks guests: idp names the home tenant's token service and the
// acct optional claim is 1.
func Guest(home string) TokenOption {
	return editClaims(func(s *tokenSpec, c map[string]any) {
		c["idp"] = s.t.server.issuerV1(home)
		c["acct"] = 1
	})
}

// Policy names the B2C user flow or policy that issued the token (tfp).
func Policy(policy string) TokenOption {
	return editClaims(func(s *tokenSpec, c map[string]any) {
		if _, inACR := c["acr"]; inACR {
			c["acr"] = strings.ToLower(policy)
			return
		}
		c["tfp"] = policy
	})
}

// PolicyInACR names the B2C policy in acr instead of tfp, as B2C does for
// policies configured for backward compatibility. Apply it before Policy.
func PolicyInACR() TokenOption {
	return editClaims(func(_ *tokenSpec, c map[string]any) {
		if p, ok := c["tfp"].(string); ok {
			delete(c, "tfp")
			c["acr"] = strings.ToLower(p)
		}
	})
}

// ClientApp sets the calling application (azp in v2, appid in v1).
func ClientApp(appID string) TokenOption {
	return editClaims(func(s *tokenSpec, c map[string]any) {
		if s.version == "1.0" {
			c["appid"] = appID
		} else {
			c["azp"] = appID
		}
	})
}

// AccessToken mints a delegated (user) access token for the tenant's API, as
// Entra issues to a client app acting for User: v2.0 unless V1 is given,
// with scp DefaultScope unless Scopes is given.
func (t *Tenant) AccessToken(opts ...TokenOption) string {
	return t.mint(delegated, opts)
}

// AppToken mints an app-only (client credentials) access token for the
// tenant's API, as a daemon receives it: idtyp app, oid and sub of the
// daemon's service principal, no scp. Like Entra, it has no roles claim
// unless Roles is given (no application permission granted).
func (t *Tenant) AppToken(opts ...TokenOption) string {
	return t.mint(appOnly, opts)
}

// IDToken mints an OpenID Connect ID token for the tenant's user, with aud
// the API's client ID (the tutorial's single app registration). It is not an
// access token, and an API must refuse it.
func (t *Tenant) IDToken(opts ...TokenOption) string {
	return t.mint(idToken, opts)
}

func (t *Tenant) mint(k kind, opts []TokenOption) string {
	s := &tokenSpec{version: "2.0", kind: k, issued: time.Now(), life: DefaultLifetime, t: t}
	switch t.Kind {
	case KindB2C:
		s.version = "1.0" // B2C's access and ID tokens say ver 1.0
	}
	for _, o := range opts {
		o(s)
	}
	if t.Kind == KindExternalID {
		s.version = "2.0" // External ID issues v2.0 tokens only
	}
	if s.expired {
		s.issued = time.Now().Add(-time.Hour - s.life)
	}
	claims := s.defaults()
	for _, edit := range s.claimEdits {
		edit(s, claims)
	}
	if s.key == nil {
		s.key = t.signingKey(claims)
	}
	header := map[string]any{"typ": "JWT", "alg": "RS256", "kid": s.key.ID}
	if s.version == "1.0" && t.Kind == KindWorkforce {
		header["x5t"] = s.key.ID
	}
	for _, edit := range s.headerEdits {
		edit(header)
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims(claims))
	tok.Header = header
	signed, err := tok.SignedString(s.key.priv)
	if err != nil {
		panic("entratest: signing: " + err.Error())
	}
	return signed
}

// signingKey is the key a token is signed with by default: its B2C
// policy's own key, if it has one, else the server's signing key.
func (t *Tenant) signingKey(claims map[string]any) *Key {
	if t.Kind == KindB2C {
		policy, _ := claims["tfp"].(string)
		if policy == "" {
			policy, _ = claims["acr"].(string)
		}
		t.server.mu.Lock()
		k := t.policyKey(policy)
		t.server.mu.Unlock()
		if k != nil {
			return k
		}
	}
	return t.server.SigningKey()
}

// defaults are the claims Entra puts in a token of this kind and version.
func (s *tokenSpec) defaults() map[string]any {
	if s.t.Kind == KindB2C {
		return s.b2cDefaults()
	}
	t := s.t
	iat := s.issued.Unix()
	c := map[string]any{
		"tid": t.ID,
		"ver": s.version,
		"iat": iat,
		"nbf": iat,
		"exp": iat + int64(s.life/time.Second),
		"aio": opaque(60),
		"rh":  "1.A" + opaque(48) + ".",
		"uti": opaque(16),
		"aud": t.ClientID,
		"iss": t.IssuerV2(),
	}
	if s.version == "1.0" {
		c["iss"] = t.IssuerV1()
		c["aud"] = "api://" + t.ClientID
	}
	switch s.kind {
	case delegated:
		if s.version == "1.0" {
			c["appid"] = t.ClientApp
			c["appidacr"] = "0"
			c["acr"] = "1"
			c["amr"] = []string{"pwd"}
			c["ipaddr"] = "127.0.0.1"
		} else {
			c["azp"] = t.ClientApp
			c["azpacr"] = "0"
		}
		c["scp"] = DefaultScope
		s.setUser(c, t.User)
	case appOnly:
		if s.version == "1.0" {
			c["appid"] = t.DaemonApp
			c["appidacr"] = "1"
			c["idp"] = t.IssuerV1()
		} else {
			c["azp"] = t.DaemonApp
			c["azpacr"] = "1"
		}
		c["idtyp"] = "app"
		c["oid"] = t.DaemonObjectID
		c["sub"] = t.DaemonObjectID
	case idToken:
		// An ID token is for the client app that signed the user in; in the
		// tutorial's single registration that is the API's own client ID.
		c["aud"] = t.ClientID
		c["nonce"] = opaque(12)
		s.setUser(c, t.User)
	}
	return c
}

// b2cDefaults are the claims of Azure AD B2C tokens: no tid, sub is the
// user's object ID, the policy in tfp.
func (s *tokenSpec) b2cDefaults() map[string]any {
	t := s.t
	iat := s.issued.Unix()
	c := map[string]any{
		"iss": t.issuer(),
		"exp": iat + int64(s.life/time.Second),
		"nbf": iat,
		"iat": iat,
		"aud": t.ClientID,
		"ver": s.version,
		"tfp": t.Policies[0],
	}
	switch s.kind {
	case delegated:
		c["azp"] = t.ClientApp
		c["scp"] = DefaultScope
		c["oid"], c["sub"], c["name"] = t.User.ObjectID, t.User.ObjectID, t.User.Name
	case appOnly:
		c["azp"] = t.DaemonApp
		c["oid"], c["sub"] = t.DaemonObjectID, t.DaemonObjectID
	case idToken:
		c["nonce"] = opaque(12)
		c["auth_time"] = iat
		c["oid"], c["sub"], c["name"] = t.User.ObjectID, t.User.ObjectID, t.User.Name
	}
	return c
}

func (s *tokenSpec) setUser(c map[string]any, u User) {
	if s.kind == appOnly {
		return
	}
	c["oid"] = u.ObjectID
	c["name"] = u.Name
	// sub is pairwise: stable for one user and one app, different per app.
	sum := sha256.Sum256([]byte(u.ObjectID + "|" + s.t.ClientID))
	c["sub"] = base64.RawURLEncoding.EncodeToString(sum[:])
	if s.version == "1.0" && s.kind != idToken {
		c["upn"] = u.Username
		c["unique_name"] = u.Username
		if u.GivenName != "" {
			c["given_name"] = u.GivenName
		}
		if u.FamilyName != "" {
			c["family_name"] = u.FamilyName
		}
	} else {
		c["preferred_username"] = u.Username
	}
	delete(c, "groups")
	delete(c, "_claim_names")
	delete(c, "_claim_sources")
	switch {
	case len(u.Groups) > GroupOverageLimit:
		s.setOverage(c)
	case len(u.Groups) > 0 && s.kind != idToken:
		c["groups"] = u.Groups
	}
}

// setOverage marks the token's user as in group overage, as Entra does:
// the source names the legacy Azure AD Graph, which an API must not call
// (Microsoft Graph's transitiveMemberOf gives the groups).
func (s *tokenSpec) setOverage(c map[string]any) {
	delete(c, "groups")
	oid, _ := c["oid"].(string)
	c["_claim_names"] = map[string]any{"groups": "src1"}
	c["_claim_sources"] = map[string]any{"src1": map[string]any{
		"endpoint": "https://graph.windows.net/" + s.t.ID + "/users/" + oid + "/getMemberObjects",
	}}
}
