package middleware_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/entragate/entragate/middleware"
	"github.com/entragate/entragate/middleware/entratest"
)

// ID tokens carry the user's app roles, and when an app and its API share a
// registration their audience is the API: neither scp/roles nor aud can
// tell them from access tokens. The ID-token claims and the missing client
// application claim can.
func TestIDTokensNeverPassAsAccessTokens(t *testing.T) {
	tenant := entratest.NewTenant(t)
	a := newAuth(t, tenant)
	h := a.RequireAuth(middleware.RequireAnyRole("Admin")(echoClaims))
	tests := []struct {
		name  string
		token string
	}{
		{"v2 ID token with roles", tenant.IDToken(entratest.Roles("Admin"))},
		{"v1 ID token with roles", tenant.IDToken(entratest.V1(), entratest.Roles("Admin"))},
		{"ID token with roles and scp", tenant.IDToken(entratest.Roles("Admin"), entratest.Scopes("Read"))},
		{"ID token with roles and azp", tenant.IDToken(entratest.Roles("Admin"), entratest.Claim("azp", tenant.ClientApp))},
		{"access token with an at_hash", tenant.AccessToken(entratest.Roles("Admin"), entratest.Claim("at_hash", "x"))},
		{"access token with a c_hash", tenant.AccessToken(entratest.Roles("Admin"), entratest.Claim("c_hash", "x"))},
		{"access token with a null nonce", tenant.AccessToken(entratest.Roles("Admin"), entratest.Claim("nonce", nil))},
		{"v2 token without azp", tenant.AccessToken(entratest.Roles("Admin"), entratest.WithoutClaim("azp"))},
		{"v2 token naming its client in appid", tenant.AccessToken(entratest.Roles("Admin"), entratest.WithoutClaim("azp"), entratest.Claim("appid", tenant.ClientApp))},
		{"v1 token without appid", tenant.AccessToken(entratest.V1(), entratest.Roles("Admin"), entratest.WithoutClaim("appid"))},
		{"v1 app token without appid", tenant.AppToken(entratest.V1(), entratest.Roles("Admin"), entratest.WithoutClaim("appid"))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := a.Validate(t.Context(), tc.token)
			var e *middleware.Error
			if !errors.Is(err, middleware.ErrIDToken) || !errors.As(err, &e) || !strings.Contains(e.Description, "ID token") {
				t.Fatalf("Validate: %v, want ErrIDToken with a description naming an ID token", err)
			}
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			req.Header.Set("Authorization", "Bearer "+tc.token)
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Header().Get("WWW-Authenticate"), "ID token") {
				t.Errorf("through RequireAuth and a role guard: %d %q, want 401 naming an ID token", rec.Code, rec.Header().Get("WWW-Authenticate"))
			}
		})
	}
	// The same tokens without the ID-token markers are genuine access tokens.
	for _, tok := range []string{
		tenant.AccessToken(entratest.Roles("Admin")),
		tenant.AccessToken(entratest.V1(), entratest.Roles("Admin")),
		tenant.AppToken(entratest.Roles("Admin")),
		tenant.AppToken(entratest.V1(), entratest.Roles("Admin")),
	} {
		if _, err := a.Validate(t.Context(), tok); err != nil {
			t.Errorf("access token refused: %v", err)
		}
	}
}

func TestNotBeforeAfterExpiryIsNeverValid(t *testing.T) {
	tenant := entratest.NewTenant(t)
	a := newAuth(t, tenant)
	now := time.Now()
	// Both times are within the five-minute leeway of now: only the rule
	// that nbf may not follow exp refuses the token.
	tok := tenant.AccessToken(entratest.Claim("exp", now.Add(time.Minute).Unix()), entratest.Claim("nbf", now.Add(2*time.Minute).Unix()))
	if _, err := a.Validate(t.Context(), tok); !errors.Is(err, middleware.ErrMalformedToken) || !strings.Contains(err.Error(), "nbf is after its exp") {
		t.Errorf("nbf after exp: %v, want a refusal saying nbf is after exp", err)
	}
	equal := tenant.AccessToken(entratest.Claim("exp", now.Add(time.Minute).Unix()), entratest.Claim("nbf", now.Add(time.Minute).Unix()))
	if _, err := a.Validate(t.Context(), equal); err != nil {
		t.Errorf("nbf equal to exp (valid, as Microsoft.IdentityModel has it): %v", err)
	}
}

func TestScopesSplitOnTheSpaceCharacterOnly(t *testing.T) {
	tenant := entratest.NewTenant(t)
	a := newAuth(t, tenant)
	admin := a.RequireAuth(middleware.RequireAnyScope("Admin")(echoClaims))
	for _, scp := range []string{"Read\u00a0Admin", "Read\tAdmin", "Read\u2003Admin", "Read\u0085Admin", "Read\nAdmin", "Read\u3000Admin"} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Header.Set("Authorization", "Bearer "+tenant.AccessToken(entratest.Claim("scp", scp)))
		admin.ServeHTTP(rec, req)
		if rec.Code != http.StatusForbidden {
			t.Errorf("scp %q passed a guard for Admin: %d, want 403", scp, rec.Code)
		}
	}
	c, err := a.Validate(t.Context(), tenant.AccessToken(entratest.Claim("scp", "Read  Admin\u00a0x ")))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"Read", "Admin\u00a0x"}; strings.Join(c.Scopes, "|") != strings.Join(want, "|") {
		t.Errorf("scopes %q, want %q", c.Scopes, want)
	}
}

func TestAudienceIgnoresOneTrailingSlash(t *testing.T) {
	tenant := entratest.NewTenant(t)
	for _, tc := range []struct {
		configured, aud string
		ok              bool
	}{
		{"https://contoso.example/api", "https://contoso.example/api", true},
		{"https://contoso.example/api", "https://contoso.example/api/", true},
		{"https://contoso.example/api/", "https://contoso.example/api", true},
		{"https://contoso.example/api/", "https://contoso.example/api//", true},
		{"https://contoso.example/api", "https://contoso.example/api//", false},
		{"https://contoso.example/api", "https://contoso.example/ap", false},
		{"https://contoso.example/api", "https://contoso.example/api/x", false},
		{"https://contoso.example/api", "HTTPS://contoso.example/api", false},
		{"https://contoso.example/api", "https://contoso.example/api ", false},
		{"https://contoso.example/api/", "https://contoso.example/", false},
	} {
		a := newAuth(t, tenant, func(c *middleware.Config) { c.Audiences = []string{tc.configured} })
		_, err := a.Validate(t.Context(), tenant.AccessToken(entratest.Audience(tc.aud)))
		if tc.ok && err != nil {
			t.Errorf("configured %q, aud %q: %v, want accepted", tc.configured, tc.aud, err)
		}
		if !tc.ok && !errors.Is(err, middleware.ErrInvalidAudience) {
			t.Errorf("configured %q, aud %q: %v, want ErrInvalidAudience", tc.configured, tc.aud, err)
		}
	}
}

func TestValidateExplainsTheBearerPrefix(t *testing.T) {
	tenant := entratest.NewTenant(t)
	a := newAuth(t, tenant)
	for _, raw := range []string{"Bearer " + tenant.AccessToken(), "bearer " + tenant.AccessToken()} {
		_, err := a.Validate(t.Context(), raw)
		var e *middleware.Error
		if !errors.As(err, &e) || e.Status != http.StatusUnauthorized || !strings.Contains(e.Description, "without the Bearer scheme") {
			t.Errorf("Validate(%.10q...): %v, want a description saying to pass the token without the scheme", raw, err)
		}
	}
}

func TestErrorTextIsOneLine(t *testing.T) {
	tenant := entratest.NewTenant(t)
	a := newAuth(t, tenant)
	// An unknown kid's cause is keyfunc's error, which joins two errors
	// with a newline.
	_, err := a.Validate(t.Context(), tenant.AccessToken(entratest.SignedWith(tenant.Server().NewKey())))
	var e *middleware.Error
	if !errors.As(err, &e) || e.Err == nil || !strings.Contains(e.Err.Error(), "\n") {
		t.Fatalf("expected a refusal whose cause spans lines, got %v", err)
	}
	if strings.ContainsAny(err.Error(), "\r\n") {
		t.Errorf("Error() = %q: contains a newline", err.Error())
	}
	if strings.ContainsAny(e.Description, "\r\n\"\\") {
		t.Errorf("Description %q is not safe to quote", e.Description)
	}
}
