package middleware_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/entragate/entragate/middleware"
	"github.com/entragate/entragate/middleware/entratest"
)

// withAuthority is a Config for an API of one authority.
func withAuthority(clientID string, a middleware.Authority) middleware.Config {
	return middleware.Config{ClientID: clientID, Authorities: []middleware.Authority{a}}
}

func TestNewRejectsInvalidConfig(t *testing.T) {
	const tid, cid = "72f988bf-86f1-41af-91ab-2d7cd011db47", "6e74172b-be56-4843-9ff4-e66a39bb12e3"
	tests := []struct {
		name    string
		cfg     middleware.Config
		mention string
	}{
		{"missing tenant", middleware.Config{ClientID: cid}, "TenantID is required"},
		{"missing client", middleware.Config{TenantID: tid}, "ClientID is required"},
		{"tenant neither a GUID nor a domain", middleware.Config{TenantID: "contoso", ClientID: cid}, "not a tenant ID (GUID) or a domain name"},
		{"client not a GUID", middleware.Config{TenantID: tid, ClientID: cid + "0"}, "not a GUID"},
		{"plain http authority", withAuthority(cid, middleware.EntraTenant(tid).WithHost("http://login.example.com")), "loopback"},
		{"authority with a path", withAuthority(cid, middleware.EntraTenant(tid).WithHost("https://login.microsoftonline.com/common")), "scheme and host only"},
		{"authority not a URL", withAuthority(cid, middleware.EntraTenant(tid).WithHost("login.microsoftonline.com")), "not an absolute URL"},
		{"ftp authority", withAuthority(cid, middleware.EntraTenant(tid).WithHost("ftp://login.microsoftonline.com")), "https"},
		{"empty audience", middleware.Config{TenantID: tid, ClientID: cid, Audiences: []string{""}}, "empty"},
		{"scope with a space", middleware.Config{TenantID: tid, ClientID: cid, Scopes: []string{"a b"}}, "scope and role names"},
		{"unknown token version", withAuthority(cid, middleware.EntraTenant(tid).WithTokenVersions(8)), "WithTokenVersions has unknown bits"},
		{"issuer not a URL", withAuthority(cid, middleware.EntraTenant(tid).WithIssuers("sts")), `WithIssuers: "sts"`},
		{"app signing keys of no app", withAuthority(cid, middleware.EntraTenant(tid).WithAppSigningKeys("api")), "WithAppSigningKeys"},
		{"issuers of a multi-tenant authority", withAuthority(cid, middleware.EntraMultiTenant("common", middleware.TenantAdmission{AllowAnyTenant: true}).WithIssuers("https://sts.windows.net/{tenantid}/")), "WithIssuers applies to single-tenant"},
		{"token versions of B2C", withAuthority(cid, middleware.B2CTenant("contoso", "B2C_1_s").WithTokenVersions(middleware.TokenV2)), "WithTokenVersions applies to Entra authorities only"},
		{"app signing keys of B2C", withAuthority(cid, middleware.B2CTenant("contoso", "B2C_1_s").WithAppSigningKeys(cid)), "WithAppSigningKeys applies"},
		{"token versions of External ID", withAuthority(cid, middleware.ExternalIDTenant("contoso", tid).WithTokenVersions(middleware.TokenV2)), "External ID issues v2.0 tokens only"},
		{"refresh interval typo", middleware.Config{TenantID: tid, ClientID: cid, KeyRefreshInterval: 60}, "KeyRefreshInterval 60ns (60 ns) is below the 1s minimum"},
		{"load interval too short", middleware.Config{TenantID: tid, ClientID: cid, MinLoadInterval: 10 * time.Millisecond}, "MinLoadInterval 10ms"},
		{"fetch timeout too short", middleware.Config{TenantID: tid, ClientID: cid, FetchTimeout: time.Millisecond}, "FetchTimeout 1ms"},
		{"leeway of a day", middleware.Config{TenantID: tid, ClientID: cid, Leeway: 24 * time.Hour}, "Leeway 24h0m0s"},
		{"leeway typo: 300 ns", middleware.Config{TenantID: tid, ClientID: cid, Leeway: 300}, "Leeway 300ns (300 ns) is below the 1s minimum"},
		{"leeway of half a second", middleware.Config{TenantID: tid, ClientID: cid, Leeway: 500 * time.Millisecond}, "Leeway 500ms"},
		{"token size typo: 16", middleware.Config{TenantID: tid, ClientID: cid, MaxTokenSize: 16}, "MaxTokenSize 16 is below the 1024-byte minimum"},
		{"negative token size", middleware.Config{TenantID: tid, ClientID: cid, MaxTokenSize: -1}, "MaxTokenSize -1"},
		{"full scope URI", middleware.Config{TenantID: tid, ClientID: cid, Scopes: []string{"api://" + cid + "/Orders.Read"}}, `require "Orders.Read"`},
		{"Graph scope URI", middleware.Config{TenantID: tid, ClientID: cid, Scopes: []string{"https://graph.microsoft.com/User.Read"}}, `require "User.Read"`},
		{"scope URI in another case", middleware.Config{TenantID: tid, ClientID: cid, Scopes: []string{"Api:" + cid + "/Orders.Read"}}, `require "Orders.Read"`},
		{"token cache of a billion entries", middleware.Config{TenantID: tid, ClientID: cid, TokenCacheSize: 1 << 30}, "TokenCacheSize 1073741824 is above 1048576"},
		{"admission check timeout typo", middleware.Config{ClientID: cid, Authorities: []middleware.Authority{middleware.EntraMultiTenant("organizations", middleware.TenantAdmission{
			Check: func(context.Context, string) (bool, error) { return true, nil }, CheckTimeout: 5})}}, "CheckTimeout 5ns"},
		{"admission check timeout without a check", middleware.Config{ClientID: cid, Authorities: []middleware.Authority{middleware.EntraMultiTenant("organizations", middleware.TenantAdmission{
			AllowAnyTenant: true, CheckTimeout: time.Second})}}, "Check is not"},
		{"multi-tenant as TenantID", middleware.Config{TenantID: "organizations", ClientID: cid}, "EntraMultiTenant"},
		{"TenantID and Authorities", middleware.Config{TenantID: tid, ClientID: cid, Authorities: []middleware.Authority{middleware.EntraTenant(tid)}}, "either TenantID or Authorities"},
		{"multi-tenant without admission", middleware.Config{ClientID: cid, Authorities: []middleware.Authority{middleware.EntraMultiTenant("organizations", middleware.TenantAdmission{})}}, "AllowAnyTenant"},
		{"any tenant and a list", middleware.Config{ClientID: cid, Authorities: []middleware.Authority{middleware.EntraMultiTenant("common", middleware.TenantAdmission{AllowAnyTenant: true, AllowedTenantIDs: []string{tid}})}}, "cannot be combined"},
		{"allowed tenant not a GUID", middleware.Config{ClientID: cid, Authorities: []middleware.Authority{middleware.EntraMultiTenant("organizations", middleware.TenantAdmission{AllowedTenantIDs: []string{"contoso.com"}})}}, "not a tenant ID"},
		{"personal accounts through organizations", middleware.Config{ClientID: cid, Authorities: []middleware.Authority{middleware.EntraMultiTenant("organizations", middleware.TenantAdmission{AllowAnyTenant: true, AllowPersonalAccounts: true})}}, "personal Microsoft accounts sign in only through"},
		{"multi-tenant name", middleware.Config{ClientID: cid, Authorities: []middleware.Authority{middleware.EntraMultiTenant(tid, middleware.TenantAdmission{AllowAnyTenant: true})}}, "must be"},
		{"B2C without policy", middleware.Config{ClientID: cid, Authorities: []middleware.Authority{middleware.B2CTenant("contoso")}}, "at least one user flow"},
		{"External ID tenant not a GUID", middleware.Config{ClientID: cid, Authorities: []middleware.Authority{middleware.ExternalIDTenant("contoso", "contoso")}}, "not a GUID"},
		{"zero Authority", middleware.Config{ClientID: cid, Authorities: []middleware.Authority{{}}}, "must be built with"},
		{"authority listed twice", middleware.Config{ClientID: cid, Authorities: []middleware.Authority{middleware.EntraTenant(tid), middleware.EntraTenant(tid)}}, "listed twice"},
		{"organizations and common together", middleware.Config{ClientID: cid, Authorities: []middleware.Authority{
			middleware.EntraMultiTenant("organizations", middleware.TenantAdmission{AllowedTenantIDs: []string{tid}}),
			middleware.EntraMultiTenant("common", middleware.TenantAdmission{AllowAnyTenant: true})}}, "overlaps"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := middleware.New(context.Background(), tc.cfg)
			if err == nil {
				a.Close()
				t.Fatal("New accepted an invalid configuration")
			}
			if !errors.Is(err, middleware.ErrInvalidConfig) || !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("error %q: want ErrInvalidConfig mentioning %q", err, tc.mention)
			}
		})
	}
}

func TestTokenVersionsRestrictAcceptedTokens(t *testing.T) {
	tenant := entratest.NewTenant(t)
	v2only := newAuth(t, tenant, func(c *middleware.Config) { c.Authorities[0] = c.Authorities[0].WithTokenVersions(middleware.TokenV2) })
	if _, err := v2only.Validate(t.Context(), tenant.AccessToken()); err != nil {
		t.Errorf("v2 token: %v", err)
	}
	// Refused for its version, before its issuer is looked at: the v1
	// metadata is not even read.
	_, err := v2only.Validate(t.Context(), tenant.AccessToken(entratest.V1()))
	if !errors.Is(err, middleware.ErrInvalidVersion) || !strings.Contains(err.Error(), "does not accept v1.0 tokens") {
		t.Errorf("v1 token with only v2 accepted: %v, want ErrInvalidVersion saying v1.0 is not accepted", err)
	}
	if n := tenant.Server().Requests(entratest.MetadataV1); n != 0 {
		t.Errorf("v1 metadata fetched %d times by a v2-only API", n)
	}
	v1only := newAuth(t, tenant, func(c *middleware.Config) { c.Authorities[0] = c.Authorities[0].WithTokenVersions(middleware.TokenV1) })
	_, err = v1only.Validate(t.Context(), tenant.AccessToken())
	if !errors.Is(err, middleware.ErrInvalidVersion) || !strings.Contains(err.Error(), "does not accept v2.0 tokens") {
		t.Errorf("v2 token with only v1 accepted: %v, want ErrInvalidVersion saying v2.0 is not accepted", err)
	}
}

func TestExplicitAudiencesReplaceDefaults(t *testing.T) {
	tenant := entratest.NewTenant(t)
	a := newAuth(t, tenant, func(c *middleware.Config) { c.Audiences = []string{"https://api.contoso.com"} })
	if _, err := a.Validate(t.Context(), tenant.AccessToken(entratest.V1(), entratest.Audience("https://api.contoso.com"))); err != nil {
		t.Errorf("custom App ID URI: %v", err)
	}
	if _, err := a.Validate(t.Context(), tenant.AccessToken()); !errors.Is(err, middleware.ErrInvalidAudience) {
		t.Errorf("client ID no longer configured: %v, want ErrInvalidAudience", err)
	}
}

func TestExplicitIssuersOverrideMetadata(t *testing.T) {
	tenant := entratest.NewTenant(t)
	a := newAuth(t, tenant, func(c *middleware.Config) {
		c.Authorities[0] = c.Authorities[0].WithIssuers("https://sts.windows.net/{tenantid}/")
	})
	if _, err := a.Validate(t.Context(), tenant.AccessToken(entratest.V1())); err != nil {
		t.Errorf("v1 token with its issuer listed: %v", err)
	}
	if _, err := a.Validate(t.Context(), tenant.AccessToken()); !errors.Is(err, middleware.ErrInvalidIssuer) {
		t.Errorf("v2 issuer not listed: %v, want ErrInvalidIssuer", err)
	}
}

// An app registration with a custom signing key has its tokens signed with
// a key that only the ?appid= key sets list.
func TestAppSpecificSigningKeysUseTheAppIDQuery(t *testing.T) {
	tenant := entratest.NewTenant(t)
	appKey := tenant.Server().NewKey()
	tenant.Server().SetAppSigningKey(tenant.ClientID, appKey)
	v2, v1 := tenant.AccessToken(entratest.SignedWith(appKey)), tenant.AccessToken(entratest.V1(), entratest.SignedWith(appKey))

	a := newAuth(t, tenant, func(c *middleware.Config) { c.Authorities[0] = c.Authorities[0].WithAppSigningKeys(c.ClientID) })
	for _, tok := range []string{v2, v1} {
		if _, err := a.Validate(t.Context(), tok); err != nil {
			t.Errorf("token signed with the app's own key: %v", err)
		}
	}
	if _, err := a.Validate(t.Context(), tenant.AccessToken()); !errors.Is(err, middleware.ErrUnknownSigningKey) {
		t.Errorf("token signed with a key the app's key set does not list: %v, want ErrUnknownSigningKey", err)
	}

	plain := newAuth(t, tenant)
	if _, err := plain.Validate(t.Context(), v2); !errors.Is(err, middleware.ErrUnknownSigningKey) {
		t.Errorf("without WithAppSigningKeys the app's key is unknown: %v, want ErrUnknownSigningKey", err)
	}
}

// A key restricted to one tenant in the v2 key set must not sign another
// tenant's v1 tokens, though the v1 key set names no issuer for it.
func TestKeyRestrictionsHoldAcrossKeySets(t *testing.T) {
	tenant := entratest.NewTenant(t)
	s := tenant.Server()
	msaKey := s.NewKey()
	s.PublishKeyFor(msaKey, middleware.PersonalAccountsTenantID)
	a := newAuth(t, tenant)
	for name, tok := range map[string]string{
		"v2": tenant.AccessToken(entratest.SignedWith(msaKey)),
		"v1": tenant.AccessToken(entratest.V1(), entratest.SignedWith(msaKey)),
	} {
		if _, err := a.Validate(t.Context(), tok); !errors.Is(err, middleware.ErrInvalidIssuer) {
			t.Errorf("%s token signed with a personal-accounts key: %v, want ErrInvalidIssuer", name, err)
		}
	}
	if _, err := a.Validate(t.Context(), tenant.AccessToken(entratest.V1())); err != nil {
		t.Errorf("v1 token signed with a key for every tenant: %v", err)
	}
}

// An API configured for tenant T trusts only metadata that names T: a host
// (or proxy) serving another tenant's documents is refused, not trusted.
func TestTenantIDPinsTheMetadata(t *testing.T) {
	srv := entratest.NewServer()
	t.Cleanup(srv.Close)
	clientID := entratest.NewGUID()
	mine := srv.NewTenant(entratest.WithClientID(clientID))
	theirs := srv.NewTenant(entratest.WithClientID(clientID))
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, srv.URL+strings.Replace(r.URL.Path, "/"+mine.ID+"/", "/"+theirs.ID+"/", 1), http.StatusFound)
	}))
	t.Cleanup(proxy.Close)
	a := newAuth(t, mine, fast, func(c *middleware.Config) { c.Authorities[0] = c.Authorities[0].WithHost(proxy.URL) })
	if _, err := a.Validate(t.Context(), theirs.AccessToken()); err == nil {
		t.Error("an API for one tenant accepted another tenant's token served as its metadata")
	}
	if st := a.Stats(); st.LastError == nil || !strings.Contains(st.LastError.Error(), "names tenant "+theirs.ID) {
		t.Errorf("Stats.LastError = %v, want the metadata naming another tenant", st.LastError)
	}
}

// Two authorities announcing one issuer (a tenant named by ID and by
// domain) make that issuer's tokens ambiguous: refused, and logged.
func TestAmbiguousAuthoritiesRefuse(t *testing.T) {
	var logs lockedBuffer
	tenant := entratest.NewTenant(t)
	s := tenant.Server()
	cfg := middleware.Config{ClientID: tenant.ClientID, Logger: slog.New(slog.NewTextHandler(&logs, nil)), Authorities: []middleware.Authority{
		middleware.EntraTenant(tenant.ID).WithHost(s.URL), middleware.EntraTenant(tenant.Domain).WithHost(s.URL),
	}}
	a, err := middleware.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, err := a.Validate(t.Context(), tenant.AccessToken()); !errors.Is(err, middleware.ErrInvalidIssuer) || !strings.Contains(err.Error(), "ambiguous") {
		t.Errorf("token of a tenant listed twice: %v, want ErrInvalidIssuer saying the configuration is ambiguous", err)
	}
	if !strings.Contains(logs.String(), "two authorities announce the same issuer") {
		t.Errorf("the ambiguity was not logged:\n%s", logs.String())
	}
}

// Entra's key sets say, per key, which issuer the key may sign for; a key
// restricted to one tenant must not sign another tenant's tokens.
func TestSigningKeyIssuerRule(t *testing.T) {
	tenant := entratest.NewTenant(t)
	s := tenant.Server()
	other := s.NewTenant()
	otherKey := s.NewKey()
	s.PublishKeyFor(otherKey, other.ID)
	a := newAuth(t, tenant)

	_, err := a.Validate(t.Context(), tenant.AccessToken(entratest.SignedWith(otherKey)))
	if !errors.Is(err, middleware.ErrInvalidIssuer) || !strings.Contains(err.Error(), "signing key is not valid for its issuer") {
		t.Errorf("token signed with another tenant's key: %v, want ErrInvalidIssuer for the key", err)
	}
	if _, err := a.Validate(t.Context(), tenant.AccessToken()); err != nil {
		t.Errorf("token signed with a key valid for every tenant: %v", err)
	}
	// The other tenant's own API accepts what its key signs.
	b := newAuth(t, other)
	if _, err := b.Validate(t.Context(), other.AccessToken(entratest.SignedWith(otherKey))); err != nil {
		t.Errorf("token signed with the tenant's own restricted key: %v", err)
	}
}

func TestLeewayAndClock(t *testing.T) {
	tenant := entratest.NewTenant(t)
	issued := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	exp := issued.Add(time.Hour)
	tok := tenant.AccessToken(entratest.IssuedAt(issued), entratest.Lifetime(time.Hour))
	tests := []struct {
		name   string
		leeway time.Duration
		now    time.Time
		want   error
	}{
		{"default leeway: 4 min after exp accepted", 0, exp.Add(4 * time.Minute), nil},
		{"default leeway: 6 min after exp refused", 0, exp.Add(6 * time.Minute), middleware.ErrTokenExpired},
		{"default leeway: 4 min before nbf accepted", 0, issued.Add(-4 * time.Minute), nil},
		{"default leeway: 6 min before nbf refused", 0, issued.Add(-6 * time.Minute), middleware.ErrTokenNotYetValid},
		{"1 min leeway: 2 min after exp refused", time.Minute, exp.Add(2 * time.Minute), middleware.ErrTokenExpired},
		{"no leeway: 1 s after exp refused", -1, exp.Add(time.Second), middleware.ErrTokenExpired},
		{"no leeway: 1 s before exp accepted", -1, exp.Add(-time.Second), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := newAuth(t, tenant, func(c *middleware.Config) {
				c.Leeway = tc.leeway
				c.Now = func() time.Time { return tc.now }
			})
			if _, err := a.Validate(t.Context(), tok); !errors.Is(err, tc.want) {
				t.Errorf("Validate: %v, want %v", err, tc.want)
			}
		})
	}
}
