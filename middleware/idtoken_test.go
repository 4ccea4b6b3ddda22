package middleware_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/entragate/entragate/middleware"
	"github.com/entragate/entragate/middleware/entratest"
)

// webAppAuth is an Authenticator for a web app registration (its client ID
// is the tenant's ClientApp) that signs users in.
func webAppAuth(t *testing.T, tenant *entratest.Tenant, edit ...func(*middleware.Config)) *middleware.Authenticator {
	t.Helper()
	return newAuth(t, tenant, append([]func(*middleware.Config){func(c *middleware.Config) { c.ClientID = tenant.ClientApp }}, edit...)...)
}

func TestVerifyIDToken(t *testing.T) {
	tenant := entratest.NewTenant(t)
	other := tenant.Server().NewTenant(entratest.WithClientID(tenant.ClientID))
	a := webAppAuth(t, tenant)
	const nonce = "n-0S6_WzA2Mj"
	id := func(opts ...entratest.TokenOption) string {
		return tenant.IDToken(append([]entratest.TokenOption{entratest.Audience(tenant.ClientApp), entratest.Nonce(nonce)}, opts...)...)
	}
	c, err := a.VerifyIDToken(t.Context(), id(entratest.Claim("email", "ada@contoso.com"), entratest.Claim("login_hint", "O.aaaa"),
		entratest.Claim("sid", "sid-1"), entratest.Claim("auth_time", time.Now().Unix())), nonce)
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != tenant.User.Name || c.PreferredUsername != tenant.User.Username || c.ObjectID != tenant.User.ObjectID ||
		c.TenantID != tenant.ID || c.Email != "ada@contoso.com" || c.LoginHint != "O.aaaa" || c.SessionID != "sid-1" || c.AuthTime.IsZero() || c.Nonce != nonce {
		t.Errorf("ID token claims %+v", c)
	}
	if _, err := a.VerifyIDToken(t.Context(), id(entratest.V1()), nonce); err != nil {
		t.Errorf("v1 ID token: %v", err)
	}

	forged := tenant.Server().NewKey()
	refused := []struct {
		name   string
		token  string
		nonce  string
		reason error
	}{
		{"wrong nonce", id(), "another", middleware.ErrInvalidNonce},
		{"nonce that is a prefix", id(), nonce[:4], middleware.ErrInvalidNonce},
		{"no nonce expected", id(), "", middleware.ErrInvalidNonce},
		{"no nonce in the token", id(entratest.WithoutClaim("nonce")), nonce, middleware.ErrNotIDToken},
		{"audience of another app", tenant.IDToken(entratest.Nonce(nonce)), nonce, middleware.ErrInvalidAudience},
		{"audience list naming the app without azp", id(entratest.Audience([]string{tenant.ClientApp, tenant.ClientID})), nonce, middleware.ErrInvalidAudience},
		{"azp of another app", id(entratest.Claim("azp", tenant.ClientID)), nonce, middleware.ErrInvalidAudience},
		{"access token for the app", tenant.AccessToken(entratest.Audience(tenant.ClientApp)), nonce, middleware.ErrNotIDToken},
		{"access token with the nonce", tenant.AccessToken(entratest.Audience(tenant.ClientApp), entratest.Nonce(nonce)), nonce, middleware.ErrNotIDToken},
		{"app-only token for the app", tenant.AppToken(entratest.Audience(tenant.ClientApp)), nonce, middleware.ErrNotIDToken},
		{"expired", id(entratest.Expired()), nonce, middleware.ErrTokenExpired},
		{"not valid yet", id(entratest.Claim("nbf", time.Now().Add(time.Hour).Unix())), nonce, middleware.ErrTokenNotYetValid},
		{"another tenant", other.IDToken(entratest.Audience(tenant.ClientApp), entratest.Nonce(nonce)), nonce, middleware.ErrInvalidIssuer},
		{"another tenant's issuer, this tid", id(entratest.Issuer(other.IssuerV2())), nonce, middleware.ErrInvalidIssuer},
		{"forged signature", id(entratest.SignedWith(forged), entratest.Header("kid", tenant.Server().SigningKey().ID)), nonce, middleware.ErrInvalidSignature},
		{"unknown key", id(entratest.SignedWith(forged)), nonce, middleware.ErrUnknownSigningKey},
		{"alg HS256", id(entratest.Header("alg", "HS256")), nonce, middleware.ErrUnsupportedAlgorithm},
		{"Graph nonce header", id(entratest.Header("nonce", "x")), nonce, middleware.ErrGraphToken},
		{"not a JWT", "a.b", nonce, middleware.ErrMalformedToken},
		{"no iat", id(entratest.WithoutClaim("iat")), nonce, middleware.ErrMalformedToken},
		{"no sub", id(entratest.WithoutClaim("sub")), nonce, middleware.ErrNotIDToken},
	}
	for _, tc := range refused {
		if _, err := a.VerifyIDToken(t.Context(), tc.token, tc.nonce); !errors.Is(err, tc.reason) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.reason)
		}
	}
	// And the other way round: the ID token is not an access token.
	if _, err := a.Validate(t.Context(), id()); !errors.Is(err, middleware.ErrIDToken) {
		t.Errorf("ID token through Validate: %v, want ErrIDToken", err)
	}
}

func TestVerifyIDTokenMultiTenant(t *testing.T) {
	m := newMultiTenant(t)
	webApp := entratest.NewGUID()
	a := m.auth(t, middleware.Organizations, middleware.TenantAdmission{AllowedTenantIDs: []string{m.allowed.ID}},
		func(c *middleware.Config) { c.ClientID = webApp })
	tok := func(tenant *entratest.Tenant, opts ...entratest.TokenOption) string {
		return tenant.IDToken(append([]entratest.TokenOption{entratest.Audience(webApp), entratest.Nonce("n")}, opts...)...)
	}
	if _, err := a.VerifyIDToken(t.Context(), tok(m.allowed), "n"); err != nil {
		t.Errorf("admitted tenant: %v", err)
	}
	if _, err := a.VerifyIDToken(t.Context(), tok(m.other), "n"); !errors.Is(err, middleware.ErrTenantNotAllowed) {
		t.Errorf("tenant not admitted: %v, want ErrTenantNotAllowed", err)
	}
	if _, err := a.VerifyIDToken(t.Context(), tok(m.allowed, entratest.Claim("tid", m.other.ID)), "n"); !errors.Is(err, middleware.ErrInvalidIssuer) {
		t.Errorf("tid disagreeing with iss: %v, want ErrInvalidIssuer", err)
	}
}

func TestVerifyIDTokenAfterClose(t *testing.T) {
	tenant := entratest.NewTenant(t)
	a := webAppAuth(t, tenant)
	a.Close()
	_, err := a.VerifyIDToken(t.Context(), tenant.IDToken(entratest.Audience(tenant.ClientApp), entratest.Nonce("n")), "n")
	if !errors.Is(err, middleware.ErrClosed) || !strings.Contains(err.Error(), "shutting down") {
		t.Errorf("after Close: %v", err)
	}
}
