package middleware_test

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/entragate/entragate/claims"
	"github.com/entragate/entragate/middleware"
	"github.com/entragate/entragate/middleware/entratest"
)

// Microsoft's documented claims challenge for authentication context c1
// (learn.microsoft.com/entra/identity-platform/claims-challenge), for an
// API reached through the common endpoint.
const microsoftC1Challenge = `Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", error="insufficient_claims", claims="eyJhY2Nlc3NfdG9rZW4iOnsiYWNycyI6eyJlc3NlbnRpYWwiOnRydWUsInZhbHVlIjoiYzEifX19"`

// stepUpServer serves echoClaims behind RequireAuth and Require(rule).
func stepUpServer(t *testing.T, a *middleware.Authenticator, rule middleware.Rule) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(a.RequireAuth(middleware.Require(rule)(echoClaims)))
	t.Cleanup(srv.Close)
	return srv
}

// A multi-tenant API challenges a user without the context exactly as
// Microsoft documents it: realm "", common's authorize endpoint in the
// API's cloud, insufficient_claims and the base64 claims request; the body
// says the same, and the reason is errors.Is-able.
func TestAuthContextChallengeIsMicrosoftsForm(t *testing.T) {
	tenant := entratest.NewTenant(t)
	var refused []*middleware.Error
	a := newAuth(t, tenant, func(c *middleware.Config) {
		c.Authorities = []middleware.Authority{middleware.EntraMultiTenant(middleware.Organizations,
			middleware.TenantAdmission{AllowedTenantIDs: []string{tenant.ID}}).WithHost(tenant.Server().URL)}
		c.ErrorHandler = func(w http.ResponseWriter, r *http.Request, e *middleware.Error) {
			refused = append(refused, e)
			middleware.WriteError(w, r, e)
		}
	})
	// On a multi-tenant API an authentication context counts in the
	// tenants the API trusts for it (InTenants).
	srv := stepUpServer(t, a, middleware.InTenants([]string{tenant.ID}, middleware.AuthContext("c1")))

	r := get(t, srv.URL, "Bearer "+tenant.AccessToken())
	if r.status != http.StatusUnauthorized {
		t.Fatalf("user without c1: %d, want 401", r.status)
	}
	if got := strings.ReplaceAll(r.challenge, tenant.Server().URL, "https://login.microsoftonline.com"); got != microsoftC1Challenge {
		t.Errorf("challenge\n got %s\nwant %s", got, microsoftC1Challenge)
	}
	if r.body["error"] != "insufficient_claims" || !strings.Contains(r.body["error_description"].(string), "c1") {
		t.Errorf("body %v", r.body)
	}
	if len(refused) != 1 || !errors.Is(refused[0], middleware.ErrInsufficientClaims) ||
		refused[0].Claims != `{"access_token":{"acrs":{"essential":true,"value":"c1"}}}` {
		t.Fatalf("refusals %+v", refused)
	}
	if middleware.ReasonName(refused[0]) != "insufficient_claims" {
		t.Errorf("reason name %q", middleware.ReasonName(refused[0]))
	}

	if r := get(t, srv.URL, "Bearer "+tenant.AccessToken(entratest.AuthContexts("c1"))); r.status != http.StatusOK {
		t.Errorf("user with c1: %d %v", r.status, r.body)
	}
}

// A single-tenant API names its tenant: realm is the tenant ID, and the
// authorize endpoint is the tenant's, whether the API named the tenant by
// ID or by domain.
func TestAuthContextChallengeNamesTheTenant(t *testing.T) {
	for _, byDomain := range []bool{false, true} {
		t.Run("by domain "+strconv.FormatBool(byDomain), func(t *testing.T) {
			tenant := entratest.NewTenant(t, entratest.WithDomain("contoso.example"))
			a := newAuth(t, tenant, func(c *middleware.Config) {
				if byDomain {
					c.Authorities = []middleware.Authority{middleware.EntraTenant("contoso.example").WithHost(tenant.Server().URL)}
				}
			})
			srv := stepUpServer(t, a, middleware.AuthContext("c1"))
			r := get(t, srv.URL, "Bearer "+tenant.AccessToken(entratest.V1()))
			want := `Bearer realm="` + tenant.ID + `", authorization_uri="` + tenant.Server().URL + "/" + tenant.ID +
				`/oauth2/authorize", error="insufficient_claims", claims="` + base64.StdEncoding.EncodeToString([]byte(`{"access_token":{"acrs":{"essential":true,"value":"c1"}}}`)) + `"`
			if r.status != http.StatusUnauthorized || r.challenge != want {
				t.Errorf("%d %s\nwant %s", r.status, r.challenge, want)
			}
		})
	}
}

// What no new token can change is 403: an app-only token cannot satisfy
// an authentication context; nor can a B2C token; nor, when the API asks
// for it, a client that did not declare cp1 (which one that did, in any
// case, is challenged).
func TestStepUpRefusals(t *testing.T) {
	tenant := entratest.NewTenant(t)
	capableOnly := newAuth(t, tenant, func(c *middleware.Config) { c.ChallengeOnlyCapableClients = true })
	everyone := newAuth(t, tenant)
	b2c := entratest.NewTenant(t, entratest.B2C("fabrikam", "B2C_1_signin"))
	b2cAuth := newAuth(t, b2c)
	tests := []struct {
		name   string
		a      *middleware.Authenticator
		token  string
		status int
		says   string
	}{
		{"app-only token", everyone, tenant.AppToken(entratest.Roles("Jobs.Run")), 403, "app-only"},
		{"B2C user", b2cAuth, b2c.AccessToken(), 403, "cannot give"},
		{"no cp1, capable clients only", capableOnly, tenant.AccessToken(), 403, "cp1"},
		{"other capability, capable clients only", capableOnly, tenant.AccessToken(entratest.ClientCapabilities("cp2")), 403, "cp1"},
		{"CP1, capable clients only", capableOnly, tenant.AccessToken(entratest.ClientCapabilities("CP1")), 401, "c1"},
		{"no cp1, every client", everyone, tenant.AccessToken(), 401, "c1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := stepUpServer(t, tc.a, middleware.AuthContext("c1"))
			r := get(t, srv.URL, "Bearer "+tc.token)
			if r.status != tc.status || !strings.Contains(r.body["error_description"].(string), tc.says) {
				t.Fatalf("%d %v, want %d saying %q", r.status, r.body, tc.status, tc.says)
			}
			p := challengeParams(t, r.challenge)
			switch tc.status {
			case 403:
				if p["error"] != "insufficient_scope" || p["claims"] != "" {
					t.Errorf("403 challenge %q", r.challenge)
				}
			case 401:
				if p["error"] != "insufficient_claims" || p["claims"] == "" {
					t.Errorf("401 challenge %q", r.challenge)
				}
			}
		})
	}
}

// Several contexts: any of them, or all of them (challenged one at a
// time, the first missing first); with several to choose from, the claims
// request lists them as values.
func TestAuthContextsAnyAndAll(t *testing.T) {
	withC1 := &claims.Claims{Scopes: []string{"s"}, AuthContexts: []string{"c1"}}
	tests := []struct {
		name   string
		rule   middleware.Rule
		c      *claims.Claims
		claims string // of the challenge; "" passes
	}{
		{"any, one held", middleware.AuthContext("c2", "c1"), withC1, ""},
		{"any, none held", middleware.AuthContext("c2", "c3"), withC1, `{"access_token":{"acrs":{"essential":true,"values":["c2","c3"]}}}`},
		{"all, all held", middleware.AllAuthContexts("c1"), withC1, ""},
		{"all, one missing", middleware.AllAuthContexts("c1", "c4", "c5"), withC1, `{"access_token":{"acrs":{"essential":true,"value":"c4"}}}`},
		{"ids match exactly", middleware.AuthContext("C1"), withC1, `{"access_token":{"acrs":{"essential":true,"value":"C1"}}}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.rule.Check(context.Background(), tc.c)
			if tc.claims == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var e *middleware.Error
			if !errors.As(err, &e) || e.Status != 401 || e.Claims != tc.claims {
				t.Fatalf("%v, want a 401 with claims %s", err, tc.claims)
			}
		})
	}
}

// All and Any across rule kinds: a refusal no step-up can change comes
// before a challenge (a user is not sent to sign in again only to be
// refused), unavailability before a challenge; Any passes on any rule.
func TestRuleComposition(t *testing.T) {
	user := &claims.Claims{Scopes: []string{"Payments.Read"}}
	failing := middleware.IssuedAfter(func(context.Context, *claims.Claims) (time.Time, error) { return time.Time{}, errors.New("db down") })
	tests := []struct {
		name   string
		rule   middleware.Rule
		status int // 0: passes
		reason error
	}{
		{"all: scope held, context missing", middleware.All(middleware.AnyScope("Payments.Read"), middleware.AuthContext("c1")), 401, middleware.ErrInsufficientClaims},
		{"all: context missing, scope missing", middleware.All(middleware.AuthContext("c1"), middleware.AnyScope("Payments.Write")), 403, middleware.ErrInsufficientScope},
		{"all: context missing, lookup failing", middleware.All(middleware.AuthContext("c1"), failing), 503, middleware.ErrAuthorizationUnavailable},
		{"all: lookup failing, scope missing", middleware.All(failing, middleware.AnyScope("Payments.Write")), 403, middleware.ErrInsufficientScope},
		{"any: one passes", middleware.Any(middleware.AuthContext("c1"), middleware.AnyScope("Payments.Read")), 0, nil},
		{"any: scope missing or context missing", middleware.Any(middleware.AnyScope("Payments.Write"), middleware.AuthContext("c1")), 401, middleware.ErrInsufficientClaims},
		{"any: lookup failing or scope missing", middleware.Any(middleware.AnyScope("Payments.Write"), failing), 503, middleware.ErrAuthorizationUnavailable},
		{"any: context missing or lookup failing", middleware.Any(middleware.AuthContext("c1"), failing), 503, middleware.ErrAuthorizationUnavailable},
		{"any: all refuse", middleware.Any(middleware.AnyScope("A"), middleware.AnyRole("B")), 403, middleware.ErrInsufficientScope},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.rule.Check(context.Background(), user)
			var e *middleware.Error
			switch {
			case tc.status == 0 && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.status == 0:
			case !errors.As(err, &e) || e.Status != tc.status || !errors.Is(err, tc.reason):
				t.Fatalf("%v, want %d %v", err, tc.status, tc.reason)
			}
		})
	}
	for name, f := range map[string]func(){
		"All()":         func() { middleware.All() },
		"Any()":         func() { middleware.Any() },
		"a zero Rule":   func() { middleware.All(middleware.AnyScope("a"), middleware.Rule{}) },
		"AuthContext()": func() { middleware.AuthContext() },
		"bad ID":        func() { middleware.AuthContext("c 1") },
		"IssuedAfter":   func() { middleware.IssuedAfter(nil) },
	} {
		t.Run("panics: "+name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			f()
		})
	}
}

// IssuedAfter: a token issued before the caller's revocation gets the nbf
// claims challenge Graph sends for revoked sessions; a newer one passes;
// a failing lookup is 503 with Retry-After, never a 200 or a 403.
func TestIssuedAfter(t *testing.T) {
	tenant := entratest.NewTenant(t)
	a := newAuth(t, tenant)
	revoked := time.Now().Add(-10 * time.Minute).Truncate(time.Second)
	var fail bool
	rule := middleware.IssuedAfter(func(_ context.Context, c *claims.Claims) (time.Time, error) {
		if fail {
			return time.Time{}, errors.New("revocation store unreachable")
		}
		if c.ObjectID == tenant.User.ObjectID {
			return revoked, nil
		}
		return time.Time{}, nil
	})
	srv := stepUpServer(t, a, rule)

	old := tenant.AccessToken(entratest.IssuedAt(revoked.Add(-time.Minute)))
	r := get(t, srv.URL, "Bearer "+old)
	p := challengeParams(t, r.challenge)
	raw, _ := base64.StdEncoding.DecodeString(p["claims"])
	if want := `{"access_token":{"nbf":{"essential":true,"value":"` + strconv.FormatInt(revoked.Unix(), 10) + `"}}}`; r.status != 401 || string(raw) != want {
		t.Fatalf("token from before the revocation: %d %q, claims %s, want %s", r.status, r.challenge, raw, want)
	}
	if r := get(t, srv.URL, "Bearer "+tenant.AccessToken(entratest.IssuedAt(revoked))); r.status != 200 {
		t.Errorf("token issued at the revocation: %d %v", r.status, r.body)
	}
	other := entratest.User{ObjectID: entratest.NewGUID(), Name: "Other"}
	if r := get(t, srv.URL, "Bearer "+tenant.AccessToken(entratest.ForUser(other), entratest.IssuedAt(revoked.Add(-time.Minute)))); r.status != 200 {
		t.Errorf("a user without a revocation: %d %v", r.status, r.body)
	}
	fail = true
	r = get(t, srv.URL, "Bearer "+old)
	if r.status != 503 || r.header.Get("Retry-After") == "" {
		t.Errorf("failing lookup: %d %v", r.status, r.header)
	}
}

// Transports get the same challenge: Authorize's *Error and Challenge
// carry what RequireAuth sends.
func TestStepUpThroughAuthorize(t *testing.T) {
	tenant := entratest.NewTenant(t)
	a := newAuth(t, tenant)
	srv := stepUpServer(t, a, middleware.AuthContext("c1"))
	token := tenant.AccessToken()
	httpChallenge := get(t, srv.URL, "Bearer "+token).challenge

	_, err := a.Authorize(context.Background(), token, middleware.AuthContext("c1"))
	var e *middleware.Error
	if !errors.As(err, &e) || e.AuthorizationURI != tenant.Server().URL+"/"+tenant.ID+"/oauth2/authorize" {
		t.Fatalf("Authorize: %v %+v", err, e)
	}
	if got := a.Challenge(err); got != httpChallenge {
		t.Errorf("Challenge %q, HTTP sent %q", got, httpChallenge)
	}
	_, err = a.AuthorizeHeader(context.Background(), []string{"Bearer " + token}, middleware.AuthContext("c1"))
	if got := a.Challenge(err); got != httpChallenge {
		t.Errorf("AuthorizeHeader's challenge %q, HTTP sent %q", got, httpChallenge)
	}
}

// A middle tier passes Entra's claims on to its client in the same
// challenge a step-up rule sends, naming the token's authority; without
// claims, "{}" asks for a new interactive sign-in.
func TestClaimsChallengeForOtherNeeds(t *testing.T) {
	tenant := entratest.NewTenant(t)
	a := newAuth(t, tenant)
	c, err := a.Validate(context.Background(), tenant.AccessToken())
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	a.WriteError(rec, a.ClaimsChallenge(c, `{"access_token":{"capolids":{"essential":true,"values":["p1"]}}}`, "consent needed"))
	ch, err := claims.ParseClaimsChallenge(rec.Header().Values("WWW-Authenticate")...)
	if rec.Code != 401 || err != nil || ch.Claims != `{"access_token":{"capolids":{"essential":true,"values":["p1"]}}}` ||
		ch.Realm != tenant.ID || ch.AuthorizationURI != tenant.Server().URL+"/"+tenant.ID+"/oauth2/authorize" {
		t.Errorf("%d %q: %+v %v", rec.Code, rec.Header().Values("WWW-Authenticate"), ch, err)
	}
	for _, bad := range []string{"", "not json", `["a"]`} {
		if e := a.ClaimsChallenge(c, bad, ""); e.Claims != "{}" || !errors.Is(e, middleware.ErrInsufficientClaims) {
			t.Errorf("claims %q: %+v", bad, e)
		}
	}
}

// Where IssuedAfter's claims challenge cannot be sent (a client without
// cp1 when only capable clients are challenged, a B2C token), the stale
// token is 401 invalid_token, which any client answers with a new token,
// not a 403; and since gets claims of its own, which it cannot use to
// change what later requests are judged on.
func TestIssuedAfterWithoutAChallenge(t *testing.T) {
	revoked := time.Now().Add(-time.Minute).Truncate(time.Second)
	since := func(_ context.Context, c *claims.Claims) (time.Time, error) {
		c.Roles = append(c.Roles, "Admin") // a careless callback
		return revoked, nil
	}
	tenant := entratest.NewTenant(t)
	b2c := entratest.NewTenant(t, entratest.B2C("fabrikam", "B2C_1_signin"))
	capableOnly := newAuth(t, tenant, func(c *middleware.Config) { c.ChallengeOnlyCapableClients = true })
	for name, tc := range map[string]struct {
		a     *middleware.Authenticator
		token string
	}{
		"no cp1":    {capableOnly, tenant.AccessToken(entratest.IssuedAt(revoked.Add(-time.Hour)))},
		"B2C token": {newAuth(t, b2c), b2c.AccessToken(entratest.IssuedAt(revoked.Add(-time.Hour)))},
	} {
		t.Run(name, func(t *testing.T) {
			srv := stepUpServer(t, tc.a, middleware.IssuedAfter(since))
			r := get(t, srv.URL, "Bearer "+tc.token)
			if p := challengeParams(t, r.challenge); r.status != 401 || p["error"] != "invalid_token" || p["claims"] != "" {
				t.Errorf("%d %q", r.status, r.challenge)
			}
		})
	}
	fresh := tenant.AccessToken(entratest.IssuedAt(revoked.Add(time.Second)))
	a := newAuth(t, tenant)
	if _, err := a.Authorize(context.Background(), fresh, middleware.IssuedAfter(since)); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Authorize(context.Background(), fresh, middleware.AnyRole("Admin")); !errors.Is(err, middleware.ErrInsufficientScope) {
		t.Errorf("a role a callback appended counted on the next request: %v", err)
	}
}

// IssuedAfter compares whole seconds, as token times are: a revocation at
// 12:00:00.700 lets in a token issued at 12:00:00 (else a client would be
// challenged again and again within that second); a token without iat is
// judged by its nbf.
func TestIssuedAfterTimes(t *testing.T) {
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	rule := middleware.IssuedAfter(func(context.Context, *claims.Claims) (time.Time, error) { return base.Add(700 * time.Millisecond), nil })
	for name, tc := range map[string]struct {
		c  *claims.Claims
		ok bool
	}{
		"issued in the revocation's second": {&claims.Claims{IssuedAt: base}, true},
		"issued a second before":            {&claims.Claims{IssuedAt: base.Add(-time.Second)}, false},
		"no iat, nbf in the second":         {&claims.Claims{NotBefore: base}, true},
		"no iat, nbf before":                {&claims.Claims{NotBefore: base.Add(-time.Second)}, false},
		"neither":                           {&claims.Claims{}, false},
	} {
		if err := rule.Check(context.Background(), tc.c); tc.ok != (err == nil) {
			t.Errorf("%s: %v, want ok %v", name, err, tc.ok)
		}
	}
}
