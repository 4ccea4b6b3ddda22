package middleware_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/entragate/entragate/middleware"
	"github.com/entragate/entragate/middleware/entratest"
)

// recorder is an Observer that keeps what it is told.
type recorder struct {
	mu         sync.Mutex
	decisions  []middleware.Decision
	loads      []middleware.LoadEvent
	admissions []middleware.AdmissionEvent
}

func (r *recorder) observer() middleware.Observer {
	return middleware.Observer{
		Decision: func(_ context.Context, d middleware.Decision) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.decisions = append(r.decisions, d)
		},
		Load: func(e middleware.LoadEvent) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.loads = append(r.loads, e)
		},
		Admission: func(_ context.Context, e middleware.AdmissionEvent) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.admissions = append(r.admissions, e)
		},
	}
}

func (r *recorder) takeDecisions() []middleware.Decision {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := r.decisions
	r.decisions = nil
	return d
}

// Each request is one decision, reported once its fate is known: a token
// refused by a route guard is one refused decision, not an accepted one.
func TestEachRequestIsOneDecision(t *testing.T) {
	tenant := entratest.NewTenant(t)
	var rec recorder
	a := newAuth(t, tenant, func(c *middleware.Config) { c.Observer = rec.observer() })
	r := chi.NewRouter()
	r.Use(a.RequireAuth)
	ok := func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("{}")) }
	r.With(middleware.RequireAnyScope("Data.Write")).Get("/write", ok)
	r.Get("/read", ok)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	tok := tenant.AccessToken(entratest.Scopes("Data.Read"))

	tests := []struct {
		name    string
		path    string
		auth    string
		outcome middleware.Outcome
		reason  error
		status  int
		cached  bool
	}{
		{"first sight, accepted", "/read", "Bearer " + tok, middleware.Accepted, nil, 200, false},
		{"seen again, accepted from the cache", "/read", "Bearer " + tok, middleware.Accepted, nil, 200, true},
		{"refused by the route's guard", "/write", "Bearer " + tok, middleware.Refused, middleware.ErrInsufficientScope, 403, true},
		{"no token", "/read", "", middleware.Refused, middleware.ErrMissingToken, 401, false},
		{"expired", "/read", "Bearer " + tenant.AccessToken(entratest.Expired()), middleware.Refused, middleware.ErrTokenExpired, 401, false},
		{"two tokens", "/read", "Bearer a b", middleware.Refused, middleware.ErrMalformedRequest, 400, false},
	}
	for _, tc := range tests {
		var header []string
		if tc.auth != "" {
			header = []string{tc.auth}
		}
		resp := get(t, srv.URL+tc.path, header...)
		d := rec.takeDecisions()
		if len(d) != 1 {
			t.Errorf("%s: %d decisions, want 1: %+v", tc.name, len(d), d)
			continue
		}
		got := d[0]
		if resp.status != tc.status || got.Outcome != tc.outcome || got.Reason != tc.reason || got.Status != tc.status || got.Cached != tc.cached || got.Token != "access" {
			t.Errorf("%s: answer %d, decision %+v; want %v %v %d cached=%v", tc.name, resp.status, got, tc.outcome, tc.reason, tc.status, tc.cached)
		}
		if got.Duration <= 0 || got.Duration > time.Second {
			t.Errorf("%s: duration %v", tc.name, got.Duration)
		}
		if got.Claims != nil {
			t.Errorf("%s: claims reached an observer that did not ask for them", tc.name)
		}
		routed := tc.reason == nil || tc.reason == middleware.ErrInsufficientScope
		if routed && (got.Authority != tenant.Authority().String() || got.TenantID != tenant.ID) {
			t.Errorf("%s: authority %q, tenant %q; want the tenant's", tc.name, got.Authority, got.TenantID)
		}
		if !routed && got.Authority != "" {
			t.Errorf("%s: authority %q for a token refused before its issuer was known", tc.name, got.Authority)
		}
	}
}

// Validate, Authorize and Verify report one decision each; an observer
// that asks for the claims gets its own copy.
func TestTransportNeutralCallsAreDecisionsToo(t *testing.T) {
	tenant := entratest.NewTenant(t)
	var rec recorder
	obs := rec.observer()
	obs.IncludeClaims = true
	a := newAuth(t, tenant, func(c *middleware.Config) { c.Observer = obs })
	tok := tenant.AccessToken(entratest.Scopes("Data.Read"))
	if _, err := a.Validate(t.Context(), tok); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Authorize(t.Context(), tok, middleware.AnyScope("Data.Write")); !errors.Is(err, middleware.ErrInsufficientScope) {
		t.Fatalf("Authorize without the scope: %v", err)
	}
	v, err := a.Provider().NewIDTokenVerifier(middleware.IDTokenConfig{ClientID: tenant.ClientApp,
		Observer: middleware.Observer{Decision: obs.Decision, IncludeClaims: true}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(t.Context(), tenant.IDToken(entratest.Audience(tenant.ClientApp), entratest.Nonce("n")), "n"); err != nil {
		t.Fatal(err)
	}
	d := rec.takeDecisions()
	if len(d) != 3 {
		t.Fatalf("%d decisions for three calls: %+v", len(d), d)
	}
	if d[0].Outcome != middleware.Accepted || d[1].Reason != middleware.ErrInsufficientScope || d[1].Status != 403 || d[2].Token != "id" || d[2].Outcome != middleware.Accepted {
		t.Errorf("decisions %+v", d)
	}
	if d[0].Claims == nil || d[0].Claims.ObjectID != tenant.User.ObjectID {
		t.Fatalf("claims asked for: %+v", d[0].Claims)
	}
	d[0].Claims.Roles = append(d[0].Claims.Roles, "Admin")
	if c, err := a.Validate(t.Context(), tok); err != nil || c.HasRole("Admin") {
		t.Errorf("an observer's change to its claims reached a later request: %v %v", err, c.Roles)
	}
}

// Loads and admission calls are reported, one event each, and a failed
// load says so.
func TestLoadsAndAdmissionsAreReported(t *testing.T) {
	m := newMultiTenant(t)
	var rec recorder
	check := func(_ context.Context, tid string) (bool, error) {
		if tid == m.other.ID {
			return false, errors.New("database down")
		}
		return true, nil
	}
	a := m.auth(t, middleware.Organizations, middleware.TenantAdmission{Check: check}, func(c *middleware.Config) { c.Observer = rec.observer() })
	for range 3 {
		_, _ = a.Validate(t.Context(), m.allowed.AccessToken())
	}
	_, _ = a.Validate(t.Context(), m.other.AccessToken())
	rec.mu.Lock()
	loads, admissions := rec.loads, rec.admissions
	rec.mu.Unlock()
	if len(loads) != 2 {
		t.Fatalf("%d load events for two documents: %+v", len(loads), loads)
	}
	for _, l := range loads {
		if l.Err != nil || l.Keys == 0 || l.Duration <= 0 || l.Start.IsZero() || !strings.HasSuffix(l.MetadataURL, "openid-configuration") || l.Authority == "" {
			t.Errorf("load event %+v", l)
		}
	}
	if len(admissions) != 2 {
		t.Fatalf("%d admission events for two tenants (one call each, then the cache): %+v", len(admissions), admissions)
	}
	for _, e := range admissions {
		switch e.TenantID {
		case m.allowed.ID:
			if !e.Admitted || e.Err != nil {
				t.Errorf("admitted tenant's event %+v", e)
			}
		case m.other.ID:
			if e.Admitted || e.Err == nil {
				t.Errorf("failing check's event %+v", e)
			}
		default:
			t.Errorf("event for tenant %s", e.TenantID)
		}
	}

	// A failing load is an event with its error.
	tenant := entratest.NewTenant(t)
	tenant.Server().SetFault(entratest.KeysV1, entratest.Unavailable)
	var rec2 recorder
	newAuth(t, tenant, func(c *middleware.Config) { c.Observer = rec2.observer() })
	rec2.mu.Lock()
	defer rec2.mu.Unlock()
	failed := 0
	for _, l := range rec2.loads {
		if l.Err != nil {
			failed++
			if l.Version != "1.0" || l.Keys != 0 {
				t.Errorf("failed load event %+v", l)
			}
		}
	}
	if failed == 0 {
		t.Errorf("no failed load reported: %+v", rec2.loads)
	}
}

func TestReasonNames(t *testing.T) {
	tenant := entratest.NewTenant(t)
	a := newAuth(t, tenant)
	_, err := a.Validate(t.Context(), tenant.AccessToken(entratest.Expired()))
	for _, tc := range []struct {
		err  error
		want string
	}{
		{middleware.ErrTokenExpired, "token_expired"},
		{err, "token_expired"},
		{middleware.ErrInsufficientScope, "insufficient_scope"},
		{middleware.ErrKeysUnavailable, "keys_unavailable"},
		{errors.New("other"), "other"},
		{nil, ""},
	} {
		if got := middleware.ReasonName(tc.err); got != tc.want {
			t.Errorf("ReasonName(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

// A decision names the token's tenant only once its signature verified:
// a forged token names any tenant it likes, and must not mint metric
// labels. ID-token decisions name it too, and IncludeClaims gives each
// observer call claims of its own.
func TestDecisionsNameOnlyVerifiedTenants(t *testing.T) {
	srv := entratest.NewServer()
	t.Cleanup(srv.Close)
	tenant := srv.NewTenant()
	var rec recorder
	obs := rec.observer()
	obs.IncludeClaims = true
	p, err := middleware.NewProvider(t.Context(), middleware.ProviderConfig{
		Authorities: []middleware.Authority{middleware.EntraMultiTenant(middleware.Organizations, middleware.TenantAdmission{AllowAnyTenant: true}).WithHost(srv.URL)},
		Observer:    obs, // the Provider's Decision is its verifiers' default
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	a, err := p.NewAuthenticator(middleware.APIConfig{ClientID: tenant.ClientID})
	if err != nil {
		t.Fatal(err)
	}
	v, err := p.NewIDTokenVerifier(middleware.IDTokenConfig{ClientID: tenant.ClientID})
	if err != nil {
		t.Fatal(err)
	}
	forged := entratest.NewGUID()
	_, _ = a.Validate(t.Context(), tenant.AccessToken(entratest.Claim("tid", forged),
		entratest.Issuer(strings.Replace(tenant.IssuerV2(), tenant.ID, forged, 1)), entratest.SignedWith(srv.NewKey())))
	if _, err := a.Validate(t.Context(), tenant.AccessToken()); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(t.Context(), tenant.IDToken(entratest.Nonce("n")), "n"); err != nil {
		t.Fatal(err)
	}
	d := rec.takeDecisions()
	if len(d) != 3 {
		t.Fatalf("%d decisions, want 3", len(d))
	}
	if d[0].Outcome != middleware.Refused || d[0].Authority == "" || d[0].TenantID != "" {
		t.Errorf("forged token: %+v, want refused, its authority named and no tenant", d[0])
	}
	for _, ok := range d[1:] {
		if ok.Outcome != middleware.Accepted || ok.TenantID != tenant.ID || ok.Start.IsZero() {
			t.Errorf("%s token: %+v, want accepted, naming %s, with its start", ok.Token, ok, tenant.ID)
		}
	}
	if d[1].Claims == nil || d[2].Claims == nil {
		t.Fatal("IncludeClaims gave no claims")
	}
	d[1].Claims.Scopes[0] = "changed by an observer"
	if c, err := a.Validate(t.Context(), tenant.AccessToken()); err != nil || c.Scopes[0] == "changed by an observer" {
		t.Errorf("an observer's claims are shared: %v %v", c, err)
	}
}

// Load and Admission are the Provider's: on a verifier's Observer they are
// a configuration error, not silently never called.
func TestVerifierObserversTakeDecisionsOnly(t *testing.T) {
	tenant := entratest.NewTenant(t)
	a := newAuth(t, tenant)
	load := middleware.Observer{Load: func(middleware.LoadEvent) {}}
	admission := middleware.Observer{Admission: func(context.Context, middleware.AdmissionEvent) {}}
	for name, obs := range map[string]middleware.Observer{"Load": load, "Admission": admission} {
		if _, err := a.Provider().NewAuthenticator(middleware.APIConfig{ClientID: tenant.ClientID, Observer: obs}); err == nil || !strings.Contains(err.Error(), "ProviderConfig.Observer") {
			t.Errorf("APIConfig.Observer.%s: %v", name, err)
		}
		if _, err := a.Provider().NewIDTokenVerifier(middleware.IDTokenConfig{ClientID: tenant.ClientID, Observer: obs}); err == nil {
			t.Errorf("IDTokenConfig.Observer.%s accepted", name)
		}
	}
}

// An Observer that panics on a loader's goroutine drops its event: the
// load completes and the process lives.
func TestPanickingLoadObserverIsContained(t *testing.T) {
	tenant := entratest.NewTenant(t)
	a := newAuth(t, tenant, func(c *middleware.Config) {
		c.Observer = middleware.Observer{Load: func(middleware.LoadEvent) { panic("observer bug") }}
	})
	if !a.Ready() {
		t.Fatal("keys not loaded past a panicking observer")
	}
	if _, err := a.Validate(t.Context(), tenant.AccessToken()); err != nil {
		t.Error(err)
	}
}
