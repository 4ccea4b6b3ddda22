package middleware_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/entragate/entragate/middleware"
	"github.com/entragate/entragate/middleware/entratest"
)

// Entra's per-key issuer rule (signingkey.go, keyMaySign): Entra states which
// issuer a key may sign for only in its v2.0 key sets, and the rule binds
// v1.0 tokens too, whatever TokenVersions says and whichever key set
// states it.

// acceptedVersions are the TokenVersions settings that accept v1.0 tokens.
var acceptedVersions = []struct {
	name     string
	versions middleware.TokenVersions
}{
	{"v1 only", middleware.TokenV1},
	{"v1 and v2", middleware.AllTokenVersions},
}

func TestV1TokensFollowTheV2KeyRestrictions(t *testing.T) {
	for _, cfg := range acceptedVersions {
		t.Run(cfg.name, func(t *testing.T) {
			tenant := entratest.NewTenant(t)
			s := tenant.Server()
			other := s.NewTenant()
			otherKey, msaKey := s.NewKey(), s.NewKey()
			s.PublishKeyFor(otherKey, other.ID)
			s.PublishKeyFor(msaKey, middleware.PersonalAccountsTenantID)
			a := newAuth(t, tenant, func(c *middleware.Config) { c.Authorities[0] = c.Authorities[0].WithTokenVersions(cfg.versions) })
			for name, key := range map[string]*entratest.Key{"another tenant": otherKey, "personal accounts": msaKey} {
				_, err := a.Validate(t.Context(), tenant.AccessToken(entratest.V1(), entratest.SignedWith(key)))
				if !errors.Is(err, middleware.ErrInvalidIssuer) {
					t.Errorf("v1 token signed with a key restricted to %s: %v, want ErrInvalidIssuer", name, err)
				}
			}
			if _, err := a.Validate(t.Context(), tenant.AccessToken(entratest.V1())); err != nil {
				t.Errorf("v1 token signed with a key for every tenant: %v", err)
			}
			v2 := sourceOf(t, a.Stats(), "2.0")
			if want := cfg.versions&middleware.TokenV2 == 0; v2.KeyIssuersOnly != want || !v2.Ready {
				t.Errorf("v2.0 document stats %+v: want ready, KeyIssuersOnly %v", v2, want)
			}
			if cfg.versions&middleware.TokenV2 == 0 {
				if _, err := a.Validate(t.Context(), tenant.AccessToken()); !errors.Is(err, middleware.ErrInvalidVersion) {
					t.Errorf("v2 token to a v1-only API: %v, want ErrInvalidVersion", err)
				}
			}
		})
	}
}

// While the v2.0 key set is unknown, a v1.0 token cannot be told from one
// signed with a key restricted to another tenant: 503, never 200.
func TestV1TokensWaitForTheV2KeySet(t *testing.T) {
	for _, cfg := range acceptedVersions {
		for _, down := range []entratest.Endpoint{entratest.MetadataV2, entratest.KeysV2} {
			t.Run(cfg.name+", "+down.String()+" down", func(t *testing.T) {
				tenant := entratest.NewTenant(t)
				tenant.Server().SetFault(down, entratest.Unavailable)
				a := newAuth(t, tenant, fast, func(c *middleware.Config) { c.Authorities[0] = c.Authorities[0].WithTokenVersions(cfg.versions) })
				tok := tenant.AccessToken(entratest.V1())
				for range 3 {
					_, err := a.Validate(t.Context(), tok)
					var e *middleware.Error
					if !errors.As(err, &e) || !errors.Is(err, middleware.ErrKeysUnavailable) || e.Status != http.StatusServiceUnavailable || e.RetryAfterSeconds < 1 {
						t.Fatalf("v1 token while the v2.0 key set is unknown: %v, want 503 ErrKeysUnavailable with Retry-After", err)
					}
				}
				if a.Ready() {
					t.Error("Ready while the v2.0 key set is unknown")
				}
				tenant.Server().SetFault(entratest.All, entratest.NoFault)
				eventually(t, 5*time.Second, "v1 token accepted once the v2.0 key set loads", func() bool {
					_, err := a.Validate(t.Context(), tok)
					return err == nil
				})
			})
		}
	}
}

// A cached v1.0 token is checked again when the v2.0 key set reloads, even
// while its own v1.0 document cannot reload.
func TestCachedV1TokensFollowTheV2KeySet(t *testing.T) {
	for _, cfg := range acceptedVersions {
		t.Run(cfg.name, func(t *testing.T) {
			tenant := entratest.NewTenant(t)
			s := tenant.Server()
			other := s.NewTenant()
			a := newAuth(t, tenant, fast, func(c *middleware.Config) {
				c.Authorities[0] = c.Authorities[0].WithTokenVersions(cfg.versions)
				c.KeyRefreshInterval = time.Second
			})
			tok := tenant.AccessToken(entratest.V1())
			for range 2 {
				if _, err := a.Validate(t.Context(), tok); err != nil {
					t.Fatal(err)
				}
			}
			hits := a.Stats().Cache.Hits
			if hits == 0 {
				t.Fatal("the v1 token was not answered from the cache")
			}
			s.SetFault(entratest.MetadataV1, entratest.Unavailable)
			s.SetKeyIssuer(s.SigningKey(), other.IssuerV2())
			eventually(t, 5*time.Second, "cached v1 token refused once the v2.0 key set restricts its key", func() bool {
				_, err := a.Validate(t.Context(), tok)
				return errors.Is(err, middleware.ErrInvalidIssuer)
			})
		})
	}
}

// The rule compares tenants, not issuer forms, and a blank issuer states
// none.
func TestKeyIssuerNamesATenant(t *testing.T) {
	tests := []struct {
		name   string
		issuer func(tenant, other *entratest.Tenant) string
		ok     bool
	}{
		{"every key set names the tenant's v2.0 issuer", func(tenant, _ *entratest.Tenant) string { return tenant.IssuerV2() }, true},
		{"every key set names the tenant's v1.0 issuer", func(tenant, _ *entratest.Tenant) string { return tenant.IssuerV1() }, true},
		{"every key set names the v2.0 issuer template", func(tenant, _ *entratest.Tenant) string {
			return tenant.Server().URL + "/{tenantid}/v2.0"
		}, true},
		{"every key set names a blank issuer", func(*entratest.Tenant, *entratest.Tenant) string { return " \t " }, true},
		{"every key set names another tenant's v2.0 issuer", func(_, other *entratest.Tenant) string { return other.IssuerV2() }, false},
		{"every key set names another tenant's v1.0 issuer", func(_, other *entratest.Tenant) string { return other.IssuerV1() }, false},
	}
	for _, tc := range tests {
		for _, cfg := range acceptedVersions {
			t.Run(tc.name+", "+cfg.name, func(t *testing.T) {
				tenant := entratest.NewTenant(t)
				s := tenant.Server()
				other := s.NewTenant()
				s.SetKeyIssuer(s.SigningKey(), tc.issuer(tenant, other))
				a := newAuth(t, tenant, func(c *middleware.Config) { c.Authorities[0] = c.Authorities[0].WithTokenVersions(cfg.versions) })
				toks := map[string]string{"v1": tenant.AccessToken(entratest.V1())}
				if cfg.versions&middleware.TokenV2 != 0 {
					toks["v2"] = tenant.AccessToken()
				}
				for v, tok := range toks {
					_, err := a.Validate(t.Context(), tok)
					switch {
					case tc.ok && err != nil:
						t.Errorf("%s token: %v, want accepted", v, err)
					case !tc.ok && !errors.Is(err, middleware.ErrInvalidIssuer):
						t.Errorf("%s token: %v, want ErrInvalidIssuer", v, err)
					}
				}
			})
		}
	}
}

// A key Entra publishes after the v2.0 key set was read, restricted to
// another tenant: a v1.0 token signed with it makes the v2.0 key set load
// again, and is refused, not judged by the stale set that lacks the key.
// The v1.0 key set alone (where the v1.0 token's kid is looked up) names
// no issuer, so the stale v2.0 set must not pass for "unrestricted".
func TestKeysPublishedLaterBindV1TokensToo(t *testing.T) {
	for _, cfg := range acceptedVersions {
		t.Run(cfg.name, func(t *testing.T) {
			srv := entratest.NewServer()
			t.Cleanup(srv.Close)
			tenant := srv.NewTenant()
			other := srv.NewTenant(entratest.WithClientID(tenant.ClientID))
			a := newAuth(t, tenant, func(c *middleware.Config) {
				c.MinLoadInterval = time.Second
				c.Authorities = []middleware.Authority{middleware.EntraMultiTenant(middleware.Organizations,
					middleware.TenantAdmission{AllowAnyTenant: true}).WithHost(srv.URL).WithTokenVersions(cfg.versions)}
			})
			k := srv.NewKey()
			srv.PublishKeyFor(k, other.ID)
			time.Sleep(1100 * time.Millisecond) // past MinLoadInterval: the unknown kid may reload
			for range 2 {                       // the second time, from whatever the first left behind
				if _, err := a.Validate(t.Context(), tenant.AccessToken(entratest.V1(), entratest.SignedWith(k))); !errors.Is(err, middleware.ErrInvalidIssuer) {
					t.Errorf("v1 token of another tenant signed with a key published later for %s alone: %v, want ErrInvalidIssuer", other.ID, err)
				}
			}
			if _, err := a.Validate(t.Context(), other.AccessToken(entratest.V1(), entratest.SignedWith(k))); err != nil {
				t.Errorf("the key's own tenant: %v", err)
			}
		})
	}
}

// The stricter of the two stated issuers wins: a v1.0 key set that names
// an issuer for a key does not override the v2.0 key set's restriction.
func TestBothStatedIssuersBind(t *testing.T) {
	tenant := entratest.NewTenant(t)
	other := tenant.Server().NewTenant()
	k := tenant.Server().NewKey()
	tenant.Server().PublishKeyFor(k, other.ID)
	proxy := rewritingAuthority(t, tenant, func(path string, doc map[string]any) {
		if keys, ok := doc["keys"].([]any); ok && strings.HasSuffix(path, "/discovery/keys") {
			for _, entry := range keys {
				if m := entry.(map[string]any); m["kid"] == k.ID {
					m["issuer"] = "https://sts.windows.net/" + tenant.ID + "/" // the v1 set claims the key for this tenant
				}
			}
		}
	})
	a := newAuth(t, tenant, func(c *middleware.Config) {
		c.Authorities = []middleware.Authority{middleware.EntraTenant(tenant.ID).WithHost(proxy.URL)}
	})
	tok := tenant.AccessToken(entratest.V1(), entratest.SignedWith(k), entratest.Issuer("https://sts.windows.net/"+tenant.ID+"/"))
	if _, err := a.Validate(t.Context(), tok); !errors.Is(err, middleware.ErrInvalidIssuer) {
		t.Errorf("v1 token with a key the v2.0 set restricts to another tenant: %v, want ErrInvalidIssuer", err)
	}
}
