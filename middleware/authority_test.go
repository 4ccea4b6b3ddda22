package middleware_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/entragate/entragate/middleware"
	"github.com/entragate/entragate/middleware/entratest"
)

// multiTenantSetup is a fake Entra with several tenants using one
// multi-tenant API (one client ID), and an Authenticator for it.
type multiTenantSetup struct {
	srv                 *entratest.Server
	allowed, other, msa *entratest.Tenant
	clientID            string
}

func newMultiTenant(t *testing.T, opts ...entratest.ServerOption) *multiTenantSetup {
	t.Helper()
	srv := entratest.NewServer(opts...)
	t.Cleanup(srv.Close)
	m := &multiTenantSetup{srv: srv, clientID: entratest.NewGUID()}
	m.allowed = srv.NewTenant(entratest.WithClientID(m.clientID))
	m.other = srv.NewTenant(entratest.WithClientID(m.clientID))
	m.msa = srv.NewTenant(entratest.WithClientID(m.clientID), entratest.WithTenantID(middleware.PersonalAccountsTenantID))
	// Personal accounts are signed with keys only they may use, as in
	// Entra's common key set.
	msaKey := srv.NewKey()
	srv.PublishKeyFor(msaKey, middleware.PersonalAccountsTenantID)
	return m
}

func (m *multiTenantSetup) auth(t *testing.T, tenant string, admission middleware.TenantAdmission, edit ...func(*middleware.Config)) *middleware.Authenticator {
	t.Helper()
	cfg := middleware.Config{
		ClientID:    m.clientID,
		Authorities: []middleware.Authority{middleware.EntraMultiTenant(tenant, admission).WithHost(m.srv.URL)},
	}
	for _, e := range edit {
		e(&cfg)
	}
	a, err := middleware.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func (m *multiTenantSetup) msaToken(opts ...entratest.TokenOption) string {
	var key *entratest.Key
	for _, k := range m.srv.PublishedKeys() {
		if k != m.srv.SigningKey() {
			key = k
		}
	}
	return m.msa.AccessToken(append([]entratest.TokenOption{entratest.SignedWith(key)}, opts...)...)
}

func TestMultiTenantWithAnAllowList(t *testing.T) {
	for _, authority := range []string{middleware.Organizations, middleware.Common} {
		t.Run(authority, func(t *testing.T) {
			m := newMultiTenant(t)
			a := m.auth(t, authority, middleware.TenantAdmission{AllowedTenantIDs: []string{strings.ToUpper(m.allowed.ID)}})
			ok := []struct {
				name, token string
			}{
				{"allowed tenant, v2", m.allowed.AccessToken()},
				{"allowed tenant, v1", m.allowed.AccessToken(entratest.V1())},
				{"allowed tenant's daemon, v2", m.allowed.AppToken(entratest.Roles("Data.Read.All"))},
				{"allowed tenant's daemon, v1", m.allowed.AppToken(entratest.V1(), entratest.Roles("Data.Read.All"))},
			}
			for _, tc := range ok {
				if c, err := a.Validate(t.Context(), tc.token); err != nil || c.TenantID != m.allowed.ID {
					t.Errorf("%s: %v", tc.name, err)
				}
			}
			refused := []struct {
				name, token string
				reason      error
			}{
				{"tenant not admitted", m.other.AccessToken(), middleware.ErrTenantNotAllowed},
				{"tenant not admitted, v1", m.other.AccessToken(entratest.V1()), middleware.ErrTenantNotAllowed},
				{"admitted tid under another tenant's issuer", m.other.AccessToken(entratest.Claim("tid", m.allowed.ID)), middleware.ErrInvalidIssuer},
				{"admitted issuer with another tid", m.allowed.AccessToken(entratest.Claim("tid", m.other.ID)), middleware.ErrInvalidIssuer},
				{"admitted tenant without tid", m.allowed.AccessToken(entratest.WithoutClaim("tid")), middleware.ErrInvalidIssuer},
				{"tid not a GUID", m.allowed.AccessToken(entratest.Claim("tid", "contoso"), entratest.Issuer(m.srv.URL+"/contoso/v2.0")), middleware.ErrInvalidIssuer},
				{"issuer template itself", m.allowed.AccessToken(entratest.Issuer(m.srv.URL + "/{tenantid}/v2.0")), middleware.ErrInvalidIssuer},
				{"issuer template with the tid as placeholder", m.allowed.AccessToken(entratest.Issuer(m.srv.URL+"/{tenantid}/v2.0"), entratest.Claim("tid", "{tenantid}")), middleware.ErrInvalidIssuer},
				{"v1 issuer template", m.allowed.AccessToken(entratest.V1(), entratest.Issuer("https://sts.windows.net/{tenantid}/")), middleware.ErrInvalidIssuer},
				{"issuer on another host", m.allowed.AccessToken(entratest.Issuer("https://login.microsoftonline.com/" + m.allowed.ID + "/v2.0")), middleware.ErrInvalidIssuer},
				{"issuer with the tid twice", m.allowed.AccessToken(entratest.Issuer(m.srv.URL + "/" + m.allowed.ID + "/" + m.allowed.ID + "/v2.0")), middleware.ErrInvalidIssuer},
				{"v1 issuer, v2 version", m.allowed.AccessToken(entratest.Issuer(m.allowed.IssuerV1())), middleware.ErrInvalidVersion},
				{"personal account", m.msaToken(), middleware.ErrTenantNotAllowed},
				{"admitted tenant signed with a personal-account key", m.allowed.AccessToken(entratest.SignedWith(m.srv.PublishedKeys()[1])), middleware.ErrInvalidIssuer},
			}
			for _, tc := range refused {
				_, err := a.Validate(t.Context(), tc.token)
				var e *middleware.Error
				if !errors.Is(err, tc.reason) || !errors.As(err, &e) || e.Status != http.StatusUnauthorized {
					t.Errorf("%s: %v, want 401 %v", tc.name, err, tc.reason)
				}
			}
		})
	}
}

func TestMultiTenantAnyTenantAndPersonalAccounts(t *testing.T) {
	m := newMultiTenant(t)
	tests := []struct {
		name            string
		tenant          string
		admission       middleware.TenantAdmission
		other, personal bool
	}{
		{"organizations, any tenant", middleware.Organizations, middleware.TenantAdmission{AllowAnyTenant: true}, true, false},
		{"common, any tenant", middleware.Common, middleware.TenantAdmission{AllowAnyTenant: true}, true, false},
		{"common, any tenant and personal accounts", middleware.Common, middleware.TenantAdmission{AllowAnyTenant: true, AllowPersonalAccounts: true}, true, true},
		{"common, a list and personal accounts", middleware.Common, middleware.TenantAdmission{AllowedTenantIDs: []string{m.allowed.ID}, AllowPersonalAccounts: true}, false, true},
		{"common, personal accounts in the list only", middleware.Common, middleware.TenantAdmission{AllowedTenantIDs: []string{middleware.PersonalAccountsTenantID}}, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := m.auth(t, tc.tenant, tc.admission)
			check := func(what, tok string, want bool) {
				_, err := a.Validate(t.Context(), tok)
				if want && err != nil {
					t.Errorf("%s: %v, want accepted", what, err)
				}
				if !want && !errors.Is(err, middleware.ErrTenantNotAllowed) {
					t.Errorf("%s: %v, want ErrTenantNotAllowed", what, err)
				}
			}
			check("another tenant", m.other.AccessToken(), tc.other)
			check("personal account", m.msaToken(), tc.personal)
		})
	}
}

// TenantAdmission.Check is asked only for genuine tokens, once per tenant
// for concurrent requests, and its answers are kept for CheckCacheTTL.
func TestMultiTenantAdmissionCheck(t *testing.T) {
	m := newMultiTenant(t)
	var calls atomic.Int64
	var mu sync.Mutex
	onboarded := map[string]bool{m.allowed.ID: true}
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	a := m.auth(t, middleware.Organizations, middleware.TenantAdmission{
		Check: func(ctx context.Context, tid string) (bool, error) {
			calls.Add(1)
			time.Sleep(100 * time.Millisecond) // a database
			mu.Lock()
			defer mu.Unlock()
			return onboarded[tid], nil
		},
		CheckCacheTTL: time.Minute,
	}, func(c *middleware.Config) { c.Now = now })

	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if _, err := a.Validate(t.Context(), m.allowed.AccessToken()); err != nil {
				t.Errorf("onboarded tenant: %v", err)
			}
		})
	}
	wg.Wait()
	if n := calls.Load(); n != 1 {
		t.Errorf("50 concurrent requests of one tenant made %d checks, want 1", n)
	}
	if _, err := a.Validate(t.Context(), m.other.AccessToken()); !errors.Is(err, middleware.ErrTenantNotAllowed) {
		t.Errorf("tenant not onboarded: %v, want ErrTenantNotAllowed", err)
	}
	if _, err := a.Validate(t.Context(), m.allowed.AccessToken()); err != nil || calls.Load() != 2 {
		t.Errorf("within the TTL: %v, %d checks; want accepted from the cached answer", err, calls.Load())
	}
	// Forged tokens never reach the check.
	forged := m.other.AccessToken(entratest.SignedWith(m.srv.NewKey()), entratest.Header("kid", m.srv.SigningKey().ID), entratest.Claim("tid", entratest.NewGUID()))
	before := calls.Load()
	if _, err := a.Validate(t.Context(), forged); err == nil || calls.Load() != before {
		t.Errorf("forged token: %v, %d new checks; want refused without a check", err, calls.Load()-before)
	}

	// The tenant is offboarded: the cached answer holds until the TTL ends.
	mu.Lock()
	onboarded[m.allowed.ID] = false
	mu.Unlock()
	if _, err := a.Validate(t.Context(), m.allowed.AccessToken()); err != nil {
		t.Errorf("offboarded, within the TTL: %v, want the cached answer", err)
	}
	clock.Add(int64(time.Minute + time.Second))
	if _, err := a.Validate(t.Context(), m.allowed.AccessToken()); !errors.Is(err, middleware.ErrTenantNotAllowed) {
		t.Errorf("offboarded, after the TTL: %v, want ErrTenantNotAllowed", err)
	}
}

// A failing admission check is 503 with Retry-After: never 200, never a 401
// that blames the token.
func TestMultiTenantAdmissionCheckFailure(t *testing.T) {
	m := newMultiTenant(t)
	for name, check := range map[string]func(context.Context, string) (bool, error){
		"error": func(context.Context, string) (bool, error) { return true, errors.New("database down") },
		"panic": func(context.Context, string) (bool, error) { panic("bug") },
	} {
		t.Run(name, func(t *testing.T) {
			a := m.auth(t, middleware.Organizations, middleware.TenantAdmission{Check: check})
			srv := protectedServer(t, a)
			for range 3 {
				r := get(t, srv.URL, "Bearer "+m.allowed.AccessToken())
				if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" || r.challenge != "" {
					t.Fatalf("failing check: %d, Retry-After %q, challenge %q; want 503 with Retry-After", r.status, r.header.Get("Retry-After"), r.challenge)
				}
			}
			_, err := a.Validate(t.Context(), m.allowed.AccessToken())
			if !errors.Is(err, middleware.ErrTenantCheckUnavailable) {
				t.Errorf("Validate: %v, want ErrTenantCheckUnavailable", err)
			}
		})
	}
}

// Each request's cost does not depend on the admission list's length.
func TestAllowListSizeDoesNotMatter(t *testing.T) {
	m := newMultiTenant(t)
	ids := []string{m.allowed.ID}
	for range 50000 {
		ids = append(ids, entratest.NewGUID())
	}
	a := m.auth(t, middleware.Organizations, middleware.TenantAdmission{AllowedTenantIDs: ids},
		func(c *middleware.Config) { c.TokenCacheSize = -1 })
	if _, err := a.Validate(t.Context(), m.allowed.AccessToken()); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Validate(t.Context(), m.other.AccessToken()); !errors.Is(err, middleware.ErrTenantNotAllowed) {
		t.Fatal(err)
	}
}

func TestSingleTenantByDomain(t *testing.T) {
	srv := entratest.NewServer()
	t.Cleanup(srv.Close)
	tenant := srv.NewTenant(entratest.WithDomain("contoso.example.com"))
	other := srv.NewTenant(entratest.WithClientID(tenant.ClientID))
	a := newAuth(t, tenant, func(c *middleware.Config) {
		c.Authorities[0] = middleware.EntraTenant("Contoso.Example.com").WithHost(srv.URL)
	})
	for _, tok := range []string{tenant.AccessToken(), tenant.AccessToken(entratest.V1()), tenant.AppToken(entratest.Roles("R"))} {
		if c, err := a.Validate(t.Context(), tok); err != nil || c.TenantID != tenant.ID {
			t.Errorf("token of the tenant named by domain: %v", err)
		}
	}
	for name, tok := range map[string]string{
		"another tenant":                   other.AccessToken(),
		"the tenant's issuer, another tid": tenant.AccessToken(entratest.Claim("tid", other.ID)),
		"another issuer, the tenant's tid": other.AccessToken(entratest.Claim("tid", tenant.ID)),
	} {
		if _, err := a.Validate(t.Context(), tok); !errors.Is(err, middleware.ErrInvalidIssuer) {
			t.Errorf("%s: %v, want ErrInvalidIssuer", name, err)
		}
	}
	if st := a.Stats(); !strings.Contains(st.Sources[0].MetadataURL, "/contoso.example.com/") {
		t.Errorf("metadata read from %s, want the domain's", st.Sources[0].MetadataURL)
	}
}

func TestDenyGuestUsers(t *testing.T) {
	tenant := entratest.NewTenant(t)
	home := entratest.NewGUID()
	deny := newAuth(t, tenant, func(c *middleware.Config) { c.DenyGuestUsers = true })
	allow := newAuth(t, tenant)
	tests := []struct {
		name  string
		token string
		guest bool
	}{
		{"member", tenant.AccessToken(), false},
		{"v1 member", tenant.AccessToken(entratest.V1()), false},
		{"v1 daemon (idp is its own tenant)", tenant.AppToken(entratest.V1(), entratest.Roles("R")), false},
		{"member with acct 0", tenant.AccessToken(entratest.Claim("acct", 0)), false},
		{"member with its own tenant as idp", tenant.AccessToken(entratest.Claim("idp", tenant.IssuerV2())), false},
		{"guest from another tenant", tenant.AccessToken(entratest.Guest(home)), true},
		{"v1 guest", tenant.AccessToken(entratest.V1(), entratest.Guest(home)), true},
		{"guest marked by acct only", tenant.AccessToken(entratest.Claim("acct", 1)), true},
		{"guest with a Microsoft account", tenant.AccessToken(entratest.Claim("idp", "live.com")), true},
		{"guest with a personal-account tenant idp", tenant.AccessToken(entratest.Claim("idp", "https://sts.windows.net/"+middleware.PersonalAccountsTenantID+"/")), true},
	}
	for _, tc := range tests {
		_, err := deny.Validate(t.Context(), tc.token)
		var e *middleware.Error
		switch {
		case tc.guest && (!errors.Is(err, middleware.ErrGuestUser) || !errors.As(err, &e) || e.Status != http.StatusForbidden || !strings.Contains(e.Description, "guest")):
			t.Errorf("%s with DenyGuestUsers: %v, want 403 ErrGuestUser saying why", tc.name, err)
		case !tc.guest && err != nil:
			t.Errorf("%s with DenyGuestUsers: %v, want accepted", tc.name, err)
		}
		if _, err := allow.Validate(t.Context(), tc.token); err != nil {
			t.Errorf("%s by default: %v, want accepted", tc.name, err)
		}
	}
}

func TestSovereignCloudsByAuthorityHostAlone(t *testing.T) {
	for name, cloud := range map[string]entratest.Cloud{"US Government": entratest.USGovernmentCloud, "China": entratest.ChinaCloud} {
		t.Run(name, func(t *testing.T) {
			srv := entratest.NewServer(entratest.InCloud(cloud))
			t.Cleanup(srv.Close)
			tenant := srv.NewTenant()
			a := newAuth(t, tenant)
			v2, v1 := tenant.AccessToken(), tenant.AccessToken(entratest.V1())
			if !strings.HasPrefix(tenant.IssuerV2(), cloud.IssuerHost) || !strings.HasPrefix(tenant.IssuerV1(), cloud.V1IssuerHost) {
				t.Fatalf("issuers %s, %s are not the cloud's", tenant.IssuerV2(), tenant.IssuerV1())
			}
			for _, tok := range []string{v2, v1} {
				if _, err := a.Validate(t.Context(), tok); err != nil {
					t.Errorf("token of the cloud: %v", err)
				}
			}
			public := tenant.AccessToken(entratest.Issuer("https://login.microsoftonline.com/" + tenant.ID + "/v2.0"))
			if _, err := a.Validate(t.Context(), public); !errors.Is(err, middleware.ErrInvalidIssuer) {
				t.Errorf("public-cloud issuer in this cloud: %v, want ErrInvalidIssuer", err)
			}
		})
	}
	for _, host := range []string{middleware.AuthorityHostUSGovernment, middleware.AuthorityHostChina, middleware.AuthorityHostChinaLegacy} {
		cfg := middleware.Config{ClientID: entratest.NewGUID(), Authorities: []middleware.Authority{middleware.EntraTenant(entratest.NewGUID()).WithHost(host)}, FetchTimeout: 100 * time.Millisecond,
			HTTPClient: &http.Client{Transport: refusingTransport{}}}
		a, err := middleware.New(t.Context(), cfg)
		if err != nil {
			t.Errorf("AuthorityHost %s: %v", host, err)
			continue
		}
		if st := a.Stats(); !strings.HasPrefix(st.Sources[0].MetadataURL, host+"/") {
			t.Errorf("metadata URL %s, want it on %s", st.Sources[0].MetadataURL, host)
		}
		a.Close()
	}
}

// refusingTransport answers nothing: for configurations whose metadata must
// not be fetched from the internet in tests.
type refusingTransport struct{}

func (refusingTransport) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, errors.New("no network in tests")
}

func TestExternalIDTenant(t *testing.T) {
	srv := entratest.NewServer()
	t.Cleanup(srv.Close)
	tenant := srv.NewTenant(entratest.ExternalID("contosocustomers"))
	workforce := srv.NewTenant(entratest.WithClientID(tenant.ClientID))
	a := newAuth(t, tenant)
	if !strings.HasPrefix(tenant.IssuerV2(), "https://"+tenant.ID+".ciamlogin.com/"+tenant.ID+"/") {
		t.Fatalf("External ID issuer %s", tenant.IssuerV2())
	}
	for _, tok := range []string{tenant.AccessToken(), tenant.AppToken(entratest.Roles("R"))} {
		if c, err := a.Validate(t.Context(), tok); err != nil || c.TenantID != tenant.ID {
			t.Errorf("External ID token: %v", err)
		}
	}
	refused := map[string]struct {
		token  string
		reason error
	}{
		"v1 token":                     {tenant.AccessToken(entratest.Claim("ver", "1.0"), entratest.Claim("appid", tenant.ClientApp)), middleware.ErrInvalidVersion},
		"workforce issuer form":        {tenant.AccessToken(entratest.Issuer(srv.URL + "/" + tenant.ID + "/v2.0")), middleware.ErrInvalidIssuer},
		"issuer naming another tenant": {tenant.AccessToken(entratest.Issuer("https://" + tenant.ID + ".ciamlogin.com/" + workforce.ID + "/v2.0")), middleware.ErrInvalidIssuer},
		"another tid":                  {tenant.AccessToken(entratest.Claim("tid", workforce.ID)), middleware.ErrInvalidIssuer},
		"a workforce tenant's token":   {workforce.AccessToken(), middleware.ErrInvalidIssuer},
		"template filled half":         {tenant.AccessToken(entratest.Issuer("https://{tenantid}.ciamlogin.com/" + tenant.ID + "/v2.0")), middleware.ErrInvalidIssuer},
	}
	for name, tc := range refused {
		if _, err := a.Validate(t.Context(), tc.token); !errors.Is(err, tc.reason) {
			t.Errorf("%s: %v, want %v", name, err, tc.reason)
		}
	}
	if n := srv.Requests(entratest.MetadataV1); n != 0 {
		t.Errorf("an External ID authority fetched %d v1 documents", n)
	}
}

// An External ID multi-tenant template names the tenant twice; both must
// be filled from tid.
func TestTemplatesNamingTheTenantTwiceAreFilledCompletely(t *testing.T) {
	srv := entratest.NewServer()
	t.Cleanup(srv.Close)
	tenant := srv.NewTenant(entratest.ExternalID("contosocustomers"))
	other := srv.NewTenant(entratest.ExternalID("fabrikamcustomers"), entratest.WithClientID(tenant.ClientID))
	a := newAuth(t, tenant, func(c *middleware.Config) {
		*c = middleware.Config{ClientID: tenant.ClientID, Authorities: []middleware.Authority{middleware.EntraTenant(tenant.ID).WithHost(srv.URL).
			WithTokenVersions(middleware.TokenV2).WithIssuers("https://{tenantid}.ciamlogin.com/{tenantid}/v2.0")}}
	})
	if _, err := a.Validate(t.Context(), tenant.AccessToken()); err != nil {
		t.Errorf("issuer filled twice: %v", err)
	}
	mixed := tenant.AccessToken(entratest.Issuer("https://" + tenant.ID + ".ciamlogin.com/" + other.ID + "/v2.0"))
	if _, err := a.Validate(t.Context(), mixed); !errors.Is(err, middleware.ErrInvalidIssuer) {
		t.Errorf("issuer naming two tenants: %v, want ErrInvalidIssuer", err)
	}
	// A literal {tenantid} where the template has one, the tenant ID where
	// it has the other: putting the placeholder back gives the template,
	// but the template filled with tid is not this issuer.
	for _, iss := range []string{
		"https://{tenantid}.ciamlogin.com/" + tenant.ID + "/v2.0",
		"https://" + tenant.ID + ".ciamlogin.com/{tenantid}/v2.0",
		"https://{tenantid}.ciamlogin.com/{tenantid}/v2.0",
	} {
		_, err := a.Validate(t.Context(), tenant.AccessToken(entratest.Issuer(iss)))
		var e *middleware.Error
		if !errors.As(err, &e) || !errors.Is(err, middleware.ErrInvalidIssuer) || e.Description != "the token's issuer is a template, not an issuer" {
			t.Errorf("issuer %s: %v, want ErrInvalidIssuer: the token's issuer is a template", iss, err)
		}
	}
}

func TestB2CTenant(t *testing.T) {
	srv := entratest.NewServer()
	t.Cleanup(srv.Close)
	tenant := srv.NewTenant(entratest.B2C("contosob2c", "B2C_1_signupsignin", "B2C_1A_signup_signin", "B2C_1_other"))
	// The custom policy signs with a key container of its own.
	customKey := srv.NewKey()
	tenant.SetPolicyKey("B2C_1A_signup_signin", customKey)
	// The API accepts two of the three user flows.
	a := newAuth(t, tenant, func(c *middleware.Config) {
		c.Authorities = []middleware.Authority{middleware.B2CTenant("contosob2c", "B2C_1_signupsignin", "b2c_1a_signup_signin").WithHost(srv.URL)}
	})
	accepted := map[string]string{
		"user flow in tfp":               tenant.AccessToken(),
		"custom policy in tfp":           tenant.AccessToken(entratest.Policy("B2C_1A_signup_signin")),
		"custom policy in acr":           tenant.AccessToken(entratest.PolicyInACR(), entratest.Policy("B2C_1A_signup_signin")),
		"policy name in another case":    tenant.AccessToken(entratest.Policy("b2c_1_SIGNUPSIGNIN")),
		"ver 2.0":                        tenant.AccessToken(entratest.Claim("ver", "2.0")),
		"with the tenant's tid":          tenant.AccessToken(entratest.Claim("tid", tenant.ID)),
		"daemon":                         tenant.AppToken(entratest.Roles("R")),
		"v1 token of a v2-only B2C flow": tenant.AccessToken(entratest.Claim("ver", "1.0")),
	}
	for name, tok := range accepted {
		if c, err := a.Validate(t.Context(), tok); err != nil {
			t.Errorf("%s: %v", name, err)
		} else if c.TenantID != "" && c.TenantID != tenant.ID {
			t.Errorf("%s: tenant %q", name, c.TenantID)
		}
	}
	refused := map[string]struct {
		token  string
		reason error
	}{
		"policy not accepted":                {tenant.AccessToken(entratest.Policy("B2C_1_other")), middleware.ErrPolicyNotAllowed},
		"no policy":                          {tenant.AccessToken(entratest.WithoutClaim("tfp")), middleware.ErrPolicyNotAllowed},
		"another tenant's tid":               {tenant.AccessToken(entratest.Claim("tid", entratest.NewGUID())), middleware.ErrInvalidIssuer},
		"user flow signed with custom's key": {tenant.AccessToken(entratest.SignedWith(customKey)), middleware.ErrUnknownSigningKey},
		"custom policy with the flow's key":  {tenant.AccessToken(entratest.Policy("B2C_1A_signup_signin"), entratest.SignedWith(srv.SigningKey())), middleware.ErrUnknownSigningKey},
		"ID token":                           {tenant.IDToken(), middleware.ErrIDToken},
		"issuer without the trailing slash":  {tenant.AccessToken(entratest.Issuer(strings.TrimSuffix(tenant.IssuerV2(), "/"))), middleware.ErrInvalidIssuer},
		"audience of another app":            {tenant.AccessToken(entratest.Audience(entratest.NewGUID())), middleware.ErrInvalidAudience},
	}
	for name, tc := range refused {
		if _, err := a.Validate(t.Context(), tc.token); !errors.Is(err, tc.reason) {
			t.Errorf("%s: %v, want %v", name, err, tc.reason)
		}
	}
	if st := a.Stats(); len(st.Sources) != 2 || st.Sources[0].Policy == "" {
		t.Errorf("sources %+v, want one per accepted policy", st.Sources)
	}
}

// One API, several authorities: a workforce tenant for staff, an External
// ID tenant for customers, a B2C tenant being migrated from. Each token is
// checked by the authority that issued it only, and one authority's outage
// does not stop the others.
func TestSeveralAuthoritiesInOneAPI(t *testing.T) {
	clientID := entratest.NewGUID()
	staffSrv, customerSrv, legacySrv := entratest.NewServer(), entratest.NewServer(), entratest.NewServer()
	for _, s := range []*entratest.Server{staffSrv, customerSrv, legacySrv} {
		t.Cleanup(s.Close)
	}
	staff := staffSrv.NewTenant(entratest.WithClientID(clientID))
	customers := customerSrv.NewTenant(entratest.ExternalID("contosocustomers"), entratest.WithClientID(clientID))
	legacy := legacySrv.NewTenant(entratest.B2C("contosob2c"), entratest.WithClientID(clientID))
	stranger := staffSrv.NewTenant(entratest.WithClientID(clientID))
	cfg := middleware.Config{ClientID: clientID, Authorities: []middleware.Authority{staff.Authority(), customers.Authority(), legacy.Authority()}}
	fast(&cfg)
	a, err := middleware.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })

	tokens := map[string]string{
		"staff":     staff.AccessToken(),
		"staff v1":  staff.AccessToken(entratest.V1()),
		"customers": customers.AccessToken(),
		"legacy":    legacy.AccessToken(),
	}
	for name, tok := range tokens {
		if _, err := a.Validate(t.Context(), tok); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	crossed := map[string]string{
		"a stranger tenant":                  stranger.AccessToken(),
		"staff issuer, customer tid":         staff.AccessToken(entratest.Claim("tid", customers.ID)),
		"customer token signed by staff key": customers.AccessToken(entratest.SignedWith(staffSrv.NewKey())),
		"legacy token with the staff issuer": legacy.AccessToken(entratest.Issuer(staff.IssuerV2())),
	}
	for name, tok := range crossed {
		if _, err := a.Validate(t.Context(), tok); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}

	// A token naming an unknown key is looked for in its own authority's
	// key set only.
	staffSrv.ResetCounts()
	customerSrv.ResetCounts()
	legacySrv.ResetCounts()
	time.Sleep(1100 * time.Millisecond)
	_, _ = a.Validate(t.Context(), customers.AccessToken(entratest.SignedWith(customerSrv.NewKey())))
	if customerSrv.Requests(entratest.Keys) == 0 || staffSrv.Requests(entratest.All) != 0 || legacySrv.Requests(entratest.All) != 0 {
		t.Errorf("unknown kid of a customer token: customer %d, staff %d, legacy %d key-set requests; want the customer's only",
			customerSrv.Requests(entratest.Keys), staffSrv.Requests(entratest.All), legacySrv.Requests(entratest.All))
	}

	// The staff authority goes down and loses its keys' freshness; the
	// others carry on, and staff tokens signed with known keys still work.
	staffSrv.SetFault(entratest.All, entratest.Unavailable)
	staffSrv.RotateKey()
	for name, tok := range map[string]string{"customers": customers.AccessToken(), "legacy": legacy.AccessToken(), "staff, known key": staff.AccessToken(entratest.SignedWith(staffSrv.PublishedKeys()[0]))} {
		if _, err := a.Validate(t.Context(), tok); err != nil {
			t.Errorf("%s during the staff outage: %v", name, err)
		}
	}
	if _, err := a.Validate(t.Context(), staff.AccessToken()); !errors.Is(err, middleware.ErrKeysUnavailable) {
		t.Errorf("staff token with a new key during the outage: %v, want ErrKeysUnavailable", err)
	}
}

// An authority that has never loaded holds none of the others' tokens.
func TestAuthorityDownFromTheStartSparesTheOthers(t *testing.T) {
	clientID := entratest.NewGUID()
	up, down := entratest.NewServer(), entratest.NewServer()
	t.Cleanup(up.Close)
	t.Cleanup(down.Close)
	a1 := up.NewTenant(entratest.WithClientID(clientID))
	a2 := down.NewTenant(entratest.ExternalID("contosocustomers"), entratest.WithClientID(clientID))
	down.SetFault(entratest.All, entratest.Unavailable)
	cfg := middleware.Config{ClientID: clientID, Authorities: []middleware.Authority{a2.Authority(), a1.Authority()}}
	fast(&cfg)
	a, err := middleware.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	for range 3 {
		start := time.Now()
		if _, err := a.Validate(t.Context(), a1.AccessToken()); err != nil {
			t.Fatalf("token of the working authority: %v", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("token of the working authority took %v", d)
		}
		if _, err := a.Validate(t.Context(), a2.AccessToken()); !errors.Is(err, middleware.ErrKeysUnavailable) {
			t.Errorf("token of the failing authority: %v, want ErrKeysUnavailable", err)
		}
	}
}

// A B2C tenant on a custom domain may name itself by domain in its issuer
// (Microsoft.IdentityModel's Validate_FromCustomB2CAuthority:
// https://login.contoso.com/contoso.onmicrosoft.com/v2.0/).
func TestB2CTenantNamedByDomain(t *testing.T) {
	srv := entratest.NewServer()
	t.Cleanup(srv.Close)
	tenant := srv.NewTenant(entratest.B2C("contosob2c", "B2C_1_signupsignin"), entratest.IssuerByDomain())
	a := newAuth(t, tenant)
	if !a.Ready() {
		t.Fatalf("metadata whose issuer names the tenant by domain was not loaded: %+v", a.Stats().Sources)
	}
	for name, tok := range map[string]string{
		"no tid":           tenant.AccessToken(),
		"the tenant's tid": tenant.AccessToken(entratest.Claim("tid", tenant.ID)),
		"daemon":           tenant.AppToken(entratest.Roles("R")),
	} {
		if _, err := a.Validate(t.Context(), tok); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	refused := map[string]string{
		"tid that is no tenant ID":     tenant.AccessToken(entratest.Claim("tid", "contosob2c.onmicrosoft.com")),
		"issuer naming another domain": tenant.AccessToken(entratest.Issuer(srv.URL + "/fabrikamb2c.onmicrosoft.com/v2.0/")),
		"issuer naming the tenant ID":  tenant.AccessToken(entratest.Issuer(srv.URL + "/" + tenant.ID + "/v2.0/")),
	}
	for name, tok := range refused {
		if _, err := a.Validate(t.Context(), tok); !errors.Is(err, middleware.ErrInvalidIssuer) {
			t.Errorf("%s: %v, want ErrInvalidIssuer", name, err)
		}
	}
}

// Documents whose issuer has the wrong form for their shape are refused
// when loaded, and never route a token; B2C's tfp form is the right one.
func TestDocumentIssuersMustFitTheirShape(t *testing.T) {
	srv := entratest.NewServer()
	t.Cleanup(srv.Close)
	work := srv.NewTenant()
	b2c := srv.NewTenant(entratest.B2C("contosob2c", "B2C_1_signin"), entratest.WithClientID(work.ClientID))
	tfpIssuer := func(host string) string { return host + "/tfp/" + b2c.ID + "/b2c_1_signin/v2.0/" }
	tests := []struct {
		name      string
		tenant    *entratest.Tenant
		authority func(host string) middleware.Authority
		issuer    func(host string) string // what the document announces
		loads     bool
	}{
		{"multi-tenant document with a literal issuer", work,
			func(host string) middleware.Authority {
				return middleware.EntraMultiTenant(middleware.Organizations, middleware.TenantAdmission{AllowAnyTenant: true}).WithHost(host)
			},
			func(host string) string { return host + "/" + work.ID + "/v2.0" }, false},
		{"B2C issuer naming the domain, then a template", b2c,
			func(host string) middleware.Authority {
				return middleware.B2CTenant("contosob2c", "B2C_1_signin").WithHost(host)
			},
			func(host string) string { return host + "/contosob2c.onmicrosoft.com/{tenantid}/v2.0/" }, false},
		{"B2C issuer in the tfp form", b2c,
			func(host string) middleware.Authority {
				return middleware.B2CTenant("contosob2c", "B2C_1_signin").WithHost(host)
			},
			tfpIssuer, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var host string
			proxy := rewritingAuthority(t, tc.tenant, func(path string, doc map[string]any) {
				if strings.HasSuffix(path, "/v2.0/.well-known/openid-configuration") {
					doc["issuer"] = tc.issuer(host)
				}
			})
			host = proxy.URL
			a := newAuth(t, tc.tenant, func(c *middleware.Config) {
				c.Authorities = []middleware.Authority{tc.authority(host)}
				c.FetchTimeout = time.Second
			})
			var v2 middleware.SourceStats
			for _, s := range a.Stats().Sources {
				if s.Version == "2.0" {
					v2 = s
				}
			}
			if v2.Ready != tc.loads {
				t.Fatalf("document announcing %s: ready %v (error %v), want %v", tc.issuer(host), v2.Ready, v2.LastError, tc.loads)
			}
			if tc.loads {
				if _, err := a.Validate(t.Context(), b2c.AccessToken(entratest.Issuer(tfpIssuer(host)))); err != nil {
					t.Errorf("token of the tfp issuer: %v", err)
				}
			}
		})
	}
}

// An authority that accepts v1.0 tokens only still reads its v2.0
// document (for the keys' issuers), but routes no v2.0 token through it,
// even beside an authority that accepts them.
func TestV1OnlyAuthorityBesideAV2One(t *testing.T) {
	srv := entratest.NewServer()
	t.Cleanup(srv.Close)
	v1Only := srv.NewTenant()
	both := srv.NewTenant(entratest.WithClientID(v1Only.ClientID))
	a := newAuth(t, v1Only, func(c *middleware.Config) {
		c.Authorities = []middleware.Authority{
			middleware.EntraTenant(v1Only.ID).WithHost(srv.URL).WithTokenVersions(middleware.TokenV1),
			middleware.EntraTenant(both.ID).WithHost(srv.URL),
		}
	})
	if _, err := a.Validate(t.Context(), v1Only.AccessToken()); err == nil {
		t.Error("v2.0 token of the v1-only authority accepted")
	}
	for name, tok := range map[string]string{"v1 of the v1-only": v1Only.AccessToken(entratest.V1()), "v2 of the other": both.AccessToken()} {
		if _, err := a.Validate(t.Context(), tok); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// A B2C token carries no tid; beside a multi-tenant authority (whose
// issuer templates need one) it still waits for its B2C document: 503
// while that cannot load, never a 401 for a token that may be genuine.
func TestB2CTokenWaitsBesideAMultiTenantAuthority(t *testing.T) {
	srv := entratest.NewServer()
	t.Cleanup(srv.Close)
	b2c := srv.NewTenant(entratest.B2C("contosob2c", "B2C_1_signin"))
	down := entratest.NewServer()
	t.Cleanup(down.Close)
	down.SetFault(entratest.All, entratest.Unavailable)
	a := newAuth(t, b2c, func(c *middleware.Config) {
		c.FetchTimeout = 200 * time.Millisecond
		c.Authorities = []middleware.Authority{
			middleware.EntraMultiTenant(middleware.Organizations, middleware.TenantAdmission{AllowAnyTenant: true}).WithHost(srv.URL),
			middleware.B2CTenant("contosob2c", "B2C_1_signin").WithHost(down.URL),
		}
	})
	_, err := a.Validate(t.Context(), b2c.AccessToken())
	var e *middleware.Error
	if !errors.As(err, &e) || e.Status != http.StatusServiceUnavailable {
		t.Errorf("B2C token while its document is down: %v, want 503", err)
	}
}

// DenyGuestUsers does not apply to B2C, whose idp names the social or
// local provider a customer signed in with, not a home tenant.
func TestB2CCustomersAreNoGuests(t *testing.T) {
	b2c := entratest.NewTenant(t, entratest.B2C("contosob2c", "B2C_1_signin"))
	a := newAuth(t, b2c, func(c *middleware.Config) { c.DenyGuestUsers = true })
	if _, err := a.Validate(t.Context(), b2c.AccessToken(entratest.Claim("tid", b2c.ID), entratest.Claim("idp", "google.com"))); err != nil {
		t.Errorf("B2C customer who signed in with Google: %v", err)
	}
}
