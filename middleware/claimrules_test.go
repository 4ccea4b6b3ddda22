package middleware_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

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
	m := newMultiTenant(t)
	// The cause is the admission check's error, which joins two errors
	// with a newline.
	a := m.auth(t, middleware.Organizations, middleware.TenantAdmission{Check: func(context.Context, string) (bool, error) {
		return false, errors.Join(errors.New("database down"), errors.New(`retry "later"`))
	}})
	_, err := a.Validate(t.Context(), m.allowed.AccessToken())
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

// Go's base64 decoders skip line breaks even in strict mode; a token with
// one is refused, so a token has one spelling (and one cache entry).
func TestLineBreaksInTokensAreRefused(t *testing.T) {
	tenant := entratest.NewTenant(t)
	a := newAuth(t, tenant)
	ids, err := a.Provider().NewIDTokenVerifier(middleware.IDTokenConfig{ClientID: tenant.ClientApp})
	if err != nil {
		t.Fatal(err)
	}
	tok := tenant.AccessToken()
	i := strings.LastIndexByte(tok, '.')
	for _, v := range []string{tok + "\n", tok[:i+10] + "\r\n" + tok[i+10:], tok[:i+20] + "\n" + tok[i+20:], tok[:20] + "\n" + tok[20:]} {
		if _, err := a.Validate(t.Context(), v); !errors.Is(err, middleware.ErrMalformedToken) {
			t.Errorf("token with a line break: %v, want ErrMalformedToken", err)
		}
		if _, err := ids.Verify(t.Context(), v, "n"); !errors.Is(err, middleware.ErrMalformedToken) {
			t.Errorf("ID token with a line break: %v, want ErrMalformedToken", err)
		}
	}
	if _, err := a.Validate(t.Context(), tok); err != nil {
		t.Fatal(err)
	}
	if st := a.Stats().Cache; st.Entries != 1 {
		t.Errorf("cache holds %d entries for one token", st.Entries)
	}
}

// Strict base64url: the unused low bits of the last character must be zero,
// so a token has one spelling.
func TestNonCanonicalBase64IsRefused(t *testing.T) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	tenant := entratest.NewTenant(t)
	a := newAuth(t, tenant)
	tok := tenant.AccessToken()
	last := strings.IndexByte(alphabet, tok[len(tok)-1])
	bad := tok[:len(tok)-1] + string(alphabet[last|1])
	if _, err := a.Validate(t.Context(), bad); !errors.Is(err, middleware.ErrMalformedToken) {
		t.Errorf("signature with non-zero trailing bits: %v, want ErrMalformedToken", err)
	}
}

// The Authorization header's fast and slow paths read the same: optional
// white space is SP and HTAB only.
func TestAuthorizationHeaderWhiteSpace(t *testing.T) {
	tenant := entratest.NewTenant(t)
	a := newAuth(t, tenant, func(c *middleware.Config) { c.TokenCacheSize = -1 })
	h := a.RequireAuth(echoClaims)
	tok := tenant.AccessToken()
	code := func(v string) int {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header["Authorization"] = []string{v}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	for _, tc := range []struct {
		header string
		status int
	}{
		{"Bearer " + tok, 200},
		{"Bearer\t" + tok, 200},
		{"  Bearer  " + tok + " \t", 200},
		{"Bearer " + tok + "\u00a0", 401},
		{"Bearer\t" + tok + "\u00a0", 401},
		{"\u00a0Bearer " + tok, 401},
		{"Bearer " + tok + "\u2003", 401},
	} {
		if got := code(tc.header); got != tc.status {
			t.Errorf("%q...: %d, want %d", tc.header[:10], got, tc.status)
		}
	}
}

// The rules whose refusals another rule would also cause still say what
// they found.
func TestPreciseDescriptions(t *testing.T) {
	tenant := entratest.NewTenant(t)
	a := newAuth(t, tenant)
	for _, tc := range []struct {
		name, token, says string
	}{
		{"no exp, nbf or iat", tenant.AccessToken(entratest.WithoutClaim("exp", "nbf", "iat")), "no exp claim"},
		{"issuer template", tenant.AccessToken(entratest.Issuer(tenant.Server().URL + "/{tenantid}/v2.0")), "is a template"},
		{"no tid", tenant.AccessToken(entratest.WithoutClaim("tid")), "has no tid claim"},
	} {
		_, err := a.Validate(t.Context(), tc.token)
		var e *middleware.Error
		if !errors.As(err, &e) || !strings.Contains(e.Description, tc.says) {
			t.Errorf("%s: %v, want a description saying %q", tc.name, err, tc.says)
		}
	}
	m := newMultiTenant(t)
	multi := m.auth(t, middleware.Organizations, middleware.TenantAdmission{AllowAnyTenant: true})
	_, err := multi.Validate(t.Context(), m.allowed.AccessToken(entratest.Claim("tid", "contoso"), entratest.Issuer(m.srv.URL+"/contoso/v2.0")))
	var e *middleware.Error
	if !errors.As(err, &e) || !strings.Contains(e.Description, "no valid tid") {
		t.Errorf("multi-tenant token with a tid that is not a GUID: %v", err)
	}
}

// A refusal names the claim it refuses, cut short: a token's claim names
// are the caller's to choose, and must not make the answer long.
func TestRefusalsNameClaimsBriefly(t *testing.T) {
	tenant := entratest.NewTenant(t)
	a := newAuth(t, tenant)
	srv := protectedServer(t, a)
	long := strings.Repeat("é", 300) // two bytes each: the cut must not split one
	tok := tenant.AccessToken(entratest.Claim("X"+long, 1), entratest.Claim("x"+long, 2))
	r := get(t, srv.URL, "Bearer "+tok)
	if r.status != http.StatusUnauthorized || len(r.challenge) > 300 || !strings.Contains(r.body["error_description"].(string), "...") {
		t.Errorf("%d, challenge of %d bytes: %s", r.status, len(r.challenge), r.challenge)
	}
	if !utf8.ValidString(r.body["error_description"].(string)) {
		t.Errorf("description cut inside a character: %q", r.body["error_description"])
	}
}
