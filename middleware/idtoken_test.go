package middleware_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/entragate/entragate/middleware"
	"github.com/entragate/entragate/middleware/entratest"
)

// webAppAuth is an Authenticator for a web app registration (its client ID
// is the tenant's ClientApp) that signs users in.
// newProvider starts a Provider for the authorities, closed when the test
// ends.
func newProvider(t testing.TB, authorities ...middleware.Authority) *middleware.Provider {
	t.Helper()
	p, err := middleware.NewProvider(t.Context(), middleware.ProviderConfig{Authorities: authorities})
	if err != nil {
		t.Fatalf("NewProvider: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// webApp is the tenant's client app as a web app verifying its ID tokens.
func webApp(t *testing.T, p *middleware.Provider, tenant *entratest.Tenant) *middleware.IDTokenVerifier {
	t.Helper()
	v, err := p.NewIDTokenVerifier(middleware.IDTokenConfig{ClientID: tenant.ClientApp})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestVerifyIDToken(t *testing.T) {
	tenant := entratest.NewTenant(t)
	other := tenant.Server().NewTenant(entratest.WithClientID(tenant.ClientID))
	p := newProvider(t, tenant.Authority())
	v := webApp(t, p, tenant)
	const nonce = "n-0S6_WzA2Mj"
	id := func(opts ...entratest.TokenOption) string {
		return tenant.IDToken(append([]entratest.TokenOption{entratest.Audience(tenant.ClientApp), entratest.Nonce(nonce)}, opts...)...)
	}
	c, err := v.Verify(t.Context(), id(entratest.Claim("email", "ada@contoso.com"), entratest.Claim("login_hint", "O.aaaa"),
		entratest.Claim("sid", "sid-1"), entratest.Claim("auth_time", time.Now().Unix())), nonce)
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != tenant.User.Name || c.PreferredUsername != tenant.User.Username || c.ObjectID != tenant.User.ObjectID ||
		c.TenantID != tenant.ID || c.Email != "ada@contoso.com" || c.LoginHint != "O.aaaa" || c.SessionID != "sid-1" || c.AuthTime.IsZero() || c.Nonce != nonce {
		t.Errorf("ID token claims %+v", c)
	}
	if _, err := v.Verify(t.Context(), id(entratest.V1()), nonce); err != nil {
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
		if _, err := v.Verify(t.Context(), tc.token, tc.nonce); !errors.Is(err, tc.reason) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.reason)
		}
	}
	// And the other way round: the ID token is not an access token, even
	// for an API registered as the web app itself.
	api, err := p.NewAuthenticator(middleware.APIConfig{ClientID: tenant.ClientApp})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := api.Validate(t.Context(), id()); !errors.Is(err, middleware.ErrIDToken) {
		t.Errorf("ID token through Validate: %v, want ErrIDToken", err)
	}
}

// A web app and the API it calls, in one process, share one Provider: each
// document is fetched once, whatever the number of verifiers.
func TestVerifiersShareTheirProvider(t *testing.T) {
	tenant := entratest.NewTenant(t)
	p := newProvider(t, tenant.Authority())
	v := webApp(t, p, tenant)
	apis := make([]*middleware.Authenticator, 3)
	for i := range apis {
		var err error
		if apis[i], err = p.NewAuthenticator(middleware.APIConfig{ClientID: tenant.ClientID, Scopes: []string{fmt.Sprintf("Scope%d", i)}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := v.Verify(t.Context(), tenant.IDToken(entratest.Audience(tenant.ClientApp), entratest.Nonce("n")), "n"); err != nil {
		t.Fatal(err)
	}
	for i, a := range apis {
		_, err := a.Validate(t.Context(), tenant.AccessToken(entratest.Scopes(fmt.Sprintf("Scope%d", i))))
		if err != nil {
			t.Errorf("API %d: %v", i, err)
		}
		if _, err := a.Validate(t.Context(), tenant.AccessToken(entratest.Scopes(fmt.Sprintf("Scope%d", i+1)))); !errors.Is(err, middleware.ErrInsufficientScope) {
			t.Errorf("API %d with another API's scope: %v, want ErrInsufficientScope: each has its own rules", i, err)
		}
	}
	s := tenant.Server()
	if n := s.Requests(entratest.MetadataV2) + s.Requests(entratest.MetadataV1); n != 2 {
		t.Errorf("%d metadata requests for one Provider and four verifiers, want 2 (one per version)", n)
	}
	// Closing one Authenticator refuses its tokens, not the others'.
	apis[0].Close()
	if _, err := apis[0].Validate(t.Context(), tenant.AccessToken(entratest.Scopes("Scope0"))); !errors.Is(err, middleware.ErrClosed) {
		t.Errorf("closed Authenticator: %v, want ErrClosed", err)
	}
	if _, err := apis[1].Validate(t.Context(), tenant.AccessToken(entratest.Scopes("Scope1"))); err != nil {
		t.Errorf("the other Authenticators stop with one of them: %v", err)
	}
	if !p.Ready() {
		t.Error("closing an Authenticator closed its shared Provider")
	}
}

func TestVerifyIDTokenMultiTenant(t *testing.T) {
	m := newMultiTenant(t)
	webAppID := entratest.NewGUID()
	p := newProvider(t, middleware.EntraMultiTenant(middleware.Organizations, middleware.TenantAdmission{AllowedTenantIDs: []string{m.allowed.ID}}).WithHost(m.srv.URL))
	a, err := p.NewIDTokenVerifier(middleware.IDTokenConfig{ClientID: webAppID})
	if err != nil {
		t.Fatal(err)
	}
	tok := func(tenant *entratest.Tenant, opts ...entratest.TokenOption) string {
		return tenant.IDToken(append([]entratest.TokenOption{entratest.Audience(webAppID), entratest.Nonce("n")}, opts...)...)
	}
	if _, err := a.Verify(t.Context(), tok(m.allowed), "n"); err != nil {
		t.Errorf("admitted tenant: %v", err)
	}
	if _, err := a.Verify(t.Context(), tok(m.other), "n"); !errors.Is(err, middleware.ErrTenantNotAllowed) {
		t.Errorf("tenant not admitted: %v, want ErrTenantNotAllowed", err)
	}
	if _, err := a.Verify(t.Context(), tok(m.allowed, entratest.Claim("tid", m.other.ID)), "n"); !errors.Is(err, middleware.ErrInvalidIssuer) {
		t.Errorf("tid disagreeing with iss: %v, want ErrInvalidIssuer", err)
	}
}

func TestVerifyIDTokenAfterClose(t *testing.T) {
	tenant := entratest.NewTenant(t)
	p := newProvider(t, tenant.Authority())
	v := webApp(t, p, tenant)
	p.Close()
	_, err := v.Verify(t.Context(), tenant.IDToken(entratest.Audience(tenant.ClientApp), entratest.Nonce("n")), "n")
	if !errors.Is(err, middleware.ErrClosed) || !strings.Contains(err.Error(), "shutting down") {
		t.Errorf("after Close: %v", err)
	}
}
