package middleware_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/entragate/entragate/claims"
	"github.com/entragate/entragate/middleware"
	"github.com/entragate/entragate/middleware/entratest"
)

func TestRequireAuth(t *testing.T) {
	tenant := entratest.NewTenant(t)
	other := tenant.Server().NewTenant()
	foreign := tenant.Server().NewKey()
	a := newAuth(t, tenant)
	srv := protectedServer(t, a)
	now := time.Now()

	bearer := func(tok string) []string { return []string{"Bearer " + tok} }
	tests := []struct {
		name   string
		auth   []string
		status int
		code   string // WWW-Authenticate error, "" for none
		reason error  // logged/typed reason, checked through Validate where a token is involved
	}{
		// Accepted tokens.
		{"v2 delegated token accepted", bearer(tenant.AccessToken()), 200, "", nil},
		{"v1 delegated token accepted", bearer(tenant.AccessToken(entratest.V1())), 200, "", nil},
		{"v2 app-only token with a role accepted", bearer(tenant.AppToken(entratest.Roles("Data.Read.All"))), 200, "", nil},
		{"v1 app-only token with a role accepted", bearer(tenant.AppToken(entratest.V1(), entratest.Roles("Data.Read.All"))), 200, "", nil},
		{"scheme is case-insensitive", []string{"bEaReR " + tenant.AccessToken()}, 200, "", nil},
		{"several spaces after the scheme", []string{"Bearer   " + tenant.AccessToken()}, 200, "", nil},
		{"v2 token with the api:// audience accepted", bearer(tenant.AccessToken(entratest.Audience("api://" + tenant.ClientID))), 200, "", nil},
		{"v1 token with the client ID audience accepted", bearer(tenant.AccessToken(entratest.V1(), entratest.Audience(tenant.ClientID))), 200, "", nil},
		{"aud as an array containing the API accepted", bearer(tenant.AccessToken(entratest.Audience([]string{"other", tenant.ClientID}))), 200, "", nil},
		{"expired within the 5 minute leeway accepted", bearer(tenant.AccessToken(entratest.IssuedAt(now.Add(-time.Hour-3*time.Minute)), entratest.Lifetime(time.Hour))), 200, "", nil},
		{"nbf within the leeway accepted", bearer(tenant.AccessToken(entratest.Claim("nbf", now.Add(2*time.Minute).Unix()))), 200, "", nil},

		// No credentials: 401 without an error code (RFC 6750 §3).
		{"no Authorization header", nil, 401, "", middleware.ErrMissingToken},
		{"Basic scheme is not bearer credentials", []string{"Basic dXNlcjpwYXNz"}, 401, "", middleware.ErrMissingToken},
		{"empty Authorization header", []string{""}, 401, "", middleware.ErrMissingToken},

		// Malformed requests: 400 invalid_request.
		{"two Authorization headers", []string{"Bearer " + tenant.AccessToken(), "Bearer " + tenant.AccessToken()}, 400, "invalid_request", middleware.ErrMalformedRequest},
		{"scheme without a token", []string{"Bearer"}, 400, "invalid_request", middleware.ErrMalformedRequest},
		{"scheme and spaces only", []string{"Bearer    "}, 400, "invalid_request", middleware.ErrMalformedRequest},
		{"two tokens in one header", []string{"Bearer a.b.c d.e.f"}, 400, "invalid_request", middleware.ErrMalformedRequest},

		// Refused tokens: 401 invalid_token.
		{"expired token", bearer(tenant.AccessToken(entratest.Expired())), 401, "invalid_token", middleware.ErrTokenExpired},
		{"not valid yet beyond the leeway", bearer(tenant.AccessToken(entratest.Claim("nbf", now.Add(10*time.Minute).Unix()))), 401, "invalid_token", middleware.ErrTokenNotYetValid},
		{"issued in the future", bearer(tenant.AccessToken(entratest.Claim("iat", now.Add(10*time.Minute).Unix()))), 401, "invalid_token", middleware.ErrInvalidIssuedAt},
		{"issued after it expires", bearer(tenant.AccessToken(entratest.Claim("iat", now.Add(4*time.Minute).Unix()), entratest.Claim("exp", now.Add(3*time.Minute).Unix()))), 401, "invalid_token", middleware.ErrInvalidIssuedAt},
		{"no exp", bearer(tenant.AccessToken(entratest.WithoutClaim("exp"))), 401, "invalid_token", middleware.ErrMalformedToken},
		{"exp as a string", bearer(tenant.AccessToken(entratest.Claim("exp", "4102444800"))), 401, "invalid_token", middleware.ErrMalformedToken},
		{"wrong audience", bearer(tenant.AccessToken(entratest.Audience(entratest.NewGUID()))), 401, "invalid_token", middleware.ErrInvalidAudience},
		{"no audience", bearer(tenant.AccessToken(entratest.WithoutClaim("aud"))), 401, "invalid_token", middleware.ErrInvalidAudience},
		{"Graph token by audience", bearer(tenant.AccessToken(entratest.Audience("00000003-0000-0000-c000-000000000000"))), 401, "invalid_token", middleware.ErrGraphToken},
		{"Graph token by URI audience", bearer(tenant.AccessToken(entratest.Audience("https://graph.microsoft.com"))), 401, "invalid_token", middleware.ErrGraphToken},
		{"Graph token by nonce header", bearer(tenant.AccessToken(entratest.Header("nonce", "abc"))), 401, "invalid_token", middleware.ErrGraphToken},
		{"token of another tenant", bearer(other.AccessToken(entratest.Audience(tenant.ClientID))), 401, "invalid_token", middleware.ErrInvalidIssuer},
		{"issuer of another tenant with this tid", bearer(tenant.AccessToken(entratest.Issuer(other.IssuerV2()))), 401, "invalid_token", middleware.ErrInvalidIssuer},
		{"issuer of another cloud", bearer(tenant.AccessToken(entratest.Issuer("https://login.microsoftonline.us/" + tenant.ID + "/v2.0"))), 401, "invalid_token", middleware.ErrInvalidIssuer},
		{"no tid", bearer(tenant.AccessToken(entratest.WithoutClaim("tid"))), 401, "invalid_token", middleware.ErrInvalidIssuer},
		{"v1 version with a v2 issuer", bearer(tenant.AccessToken(entratest.Claim("ver", "1.0"), entratest.Claim("appid", tenant.ClientApp))), 401, "invalid_token", middleware.ErrInvalidVersion},
		{"v2 version with a v1 issuer", bearer(tenant.AccessToken(entratest.V1(), entratest.Claim("ver", "2.0"), entratest.Claim("azp", tenant.ClientApp))), 401, "invalid_token", middleware.ErrInvalidVersion},
		{"no ver: the issuer decides", bearer(tenant.AccessToken(entratest.WithoutClaim("ver"))), 200, "", nil},
		{"ver 3.0", bearer(tenant.AccessToken(entratest.Claim("ver", "3.0"))), 401, "invalid_token", middleware.ErrInvalidVersion},
		{"ID token is not an access token", bearer(tenant.IDToken()), 401, "invalid_token", middleware.ErrIDToken},
		{"app-only token without roles", bearer(tenant.AppToken()), 401, "invalid_token", middleware.ErrNotAccessToken},
		{"signed with an unpublished key", bearer(tenant.AccessToken(entratest.SignedWith(foreign))), 401, "invalid_token", middleware.ErrUnknownSigningKey},
		{"signed with another key under a published kid", bearer(tenant.AccessToken(entratest.SignedWith(foreign), entratest.Header("kid", tenant.Server().SigningKey().ID))), 401, "invalid_token", middleware.ErrInvalidSignature},
		{"no kid", bearer(tenant.AccessToken(entratest.WithoutHeader("kid"))), 401, "invalid_token", middleware.ErrMissingKeyID},
		{"crit header", bearer(tenant.AccessToken(entratest.Header("crit", []string{"exp"}))), 401, "invalid_token", middleware.ErrCriticalHeader},
		{"alg header says PS256", bearer(tenant.AccessToken(entratest.Header("alg", "PS256"))), 401, "invalid_token", middleware.ErrUnsupportedAlgorithm},
		{"not a JWT", bearer("not-a-jwt"), 401, "invalid_token", middleware.ErrMalformedToken},
		{"token larger than the cap", bearer(strings.Repeat("a", middleware.DefaultMaxTokenSize+1)), 401, "invalid_token", middleware.ErrTokenTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := get(t, srv.URL, tc.auth...)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d (body %v)", r.status, tc.status, r.body)
			}
			if tc.status == 200 {
				if r.body["tid"] != tenant.ID || r.body["oid"] == "" {
					t.Errorf("handler got claims %v, want the token's tid and oid", r.body)
				}
				return
			}
			params := challengeParams(t, r.challenge)
			if params["error"] != tc.code {
				t.Errorf("WWW-Authenticate %q: error %q, want %q", r.challenge, params["error"], tc.code)
			}
			if tc.code == "" && r.challenge != "Bearer" {
				t.Errorf("WWW-Authenticate %q, want bare Bearer for a request without credentials", r.challenge)
			}
			if tc.code != "" && (params["error_description"] == "" || r.body["error"] != tc.code || r.body["error_description"] != params["error_description"]) {
				t.Errorf("body %v and challenge %q disagree or lack a description", r.body, r.challenge)
			}
			if len(tc.auth) == 1 && strings.HasPrefix(tc.auth[0], "Bearer ") && tc.reason != middleware.ErrMalformedRequest {
				_, err := a.Validate(t.Context(), strings.TrimPrefix(tc.auth[0], "Bearer "))
				if !errors.Is(err, tc.reason) {
					t.Errorf("Validate error %v, want %v", err, tc.reason)
				}
				var e *middleware.Error
				if !errors.As(err, &e) || e.Status != tc.status || e.Code != tc.code {
					t.Errorf("Validate error %#v, want *Error with status %d code %q", err, tc.status, tc.code)
				}
			}
		})
	}
}

func TestGraphTokenDescriptionNamesGraph(t *testing.T) {
	tenant := entratest.NewTenant(t)
	srv := protectedServer(t, newAuth(t, tenant))
	r := get(t, srv.URL, "Bearer "+tenant.AccessToken(entratest.Audience("https://graph.microsoft.com")))
	if d := challengeParams(t, r.challenge)["error_description"]; !strings.Contains(d, "Microsoft Graph") {
		t.Errorf("error_description %q does not tell the caller the token is for Graph", d)
	}
}

func TestTokenInQueryStringIsIgnored(t *testing.T) {
	tenant := entratest.NewTenant(t)
	srv := protectedServer(t, newAuth(t, tenant))
	r := get(t, srv.URL+"/?access_token="+tenant.AccessToken())
	if r.status != http.StatusUnauthorized || r.challenge != "Bearer" {
		t.Errorf("token in query: status %d challenge %q, want 401 Bearer", r.status, r.challenge)
	}
}

func TestClaimsReachTheHandler(t *testing.T) {
	tenant := entratest.NewTenant(t)
	srv := protectedServer(t, newAuth(t, tenant))
	tests := []struct {
		name  string
		token string
		want  map[string]any
	}{
		{"v2 user", tenant.AccessToken(entratest.Scopes("A.Read", "B.Write")), map[string]any{
			"ver": "2.0", "oid": tenant.User.ObjectID, "name": "Ada Lovelace",
			"preferred_username": tenant.User.Username, "client_app_id": tenant.ClientApp, "client_auth": "0",
		}},
		{"v1 user", tenant.AccessToken(entratest.V1()), map[string]any{
			"ver": "1.0", "upn": tenant.User.Username, "unique_name": tenant.User.Username, "client_app_id": tenant.ClientApp,
		}},
		{"v2 app", tenant.AppToken(entratest.Roles("R")), map[string]any{
			"ver": "2.0", "oid": tenant.DaemonObjectID, "client_app_id": tenant.DaemonApp, "client_auth": "1", "idtyp": "app",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := get(t, srv.URL, "Bearer "+tc.token)
			if r.status != 200 {
				t.Fatalf("status %d: %v", r.status, r.body)
			}
			for k, v := range tc.want {
				if r.body[k] != v {
					t.Errorf("claim %s = %v, want %v", k, r.body[k], v)
				}
			}
		})
	}
}

func TestRealmAndCustomErrorHandler(t *testing.T) {
	tenant := entratest.NewTenant(t)
	var got *middleware.Error
	a := newAuth(t, tenant, func(c *middleware.Config) {
		c.Realm = "contoso-api"
		c.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err *middleware.Error) {
			got = err
			w.Header().Set("X-Handled", "yes")
			middleware.WriteError(w, r, err)
		}
	})
	srv := protectedServer(t, a)
	r := get(t, srv.URL, "Bearer "+tenant.AccessToken(entratest.Expired()))
	if r.header.Get("X-Handled") != "yes" || got == nil || !errors.Is(got, middleware.ErrTokenExpired) {
		t.Fatalf("custom handler not called with the typed error: %v", got)
	}
	p := challengeParams(t, r.challenge)
	if p["realm"] != "contoso-api" || p["error"] != "invalid_token" {
		t.Errorf("challenge %q, want realm and error", r.challenge)
	}
	r = get(t, srv.URL)
	if r.challenge != `Bearer realm="contoso-api"` {
		t.Errorf("challenge without credentials %q, want only the realm", r.challenge)
	}
}

func TestEachRefusalIsLoggedOnceWithoutTheToken(t *testing.T) {
	tenant := entratest.NewTenant(t)
	var buf lockedBuffer
	logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a := newAuth(t, tenant, func(c *middleware.Config) { c.Logger = logger })
	r := chi.NewRouter()
	r.Use(a.RequireAuth)
	r.With(middleware.RequireAnyScope("Admin")).Get("/", echoClaims)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)

	tests := []struct {
		name, token, reason, level string
	}{
		{"expired", tenant.AccessToken(entratest.Expired()), middleware.ErrTokenExpired.Error(), "INFO"},
		{"missing scope", tenant.AccessToken(), middleware.ErrInsufficientScope.Error(), "INFO"},
		{"no token", "", middleware.ErrMissingToken.Error(), "DEBUG"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			buf.Reset()
			var auth []string
			if tc.token != "" {
				auth = []string{"Bearer " + tc.token}
			}
			get(t, srv.URL, auth...)
			lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
			var refusals []map[string]any
			for _, l := range lines {
				var rec map[string]any
				if json.Unmarshal([]byte(l), &rec) == nil && rec["msg"] == "entragate: request refused" {
					refusals = append(refusals, rec)
				}
			}
			if len(refusals) != 1 {
				t.Fatalf("%d refusal records, want 1:\n%s", len(refusals), buf.String())
			}
			rec := refusals[0]
			if rec["reason"] != tc.reason || rec["level"] != tc.level || rec["status"] == nil {
				t.Errorf("record %v, want reason %q at %s", rec, tc.reason, tc.level)
			}
			if tc.token != "" {
				_, _, sig := parts(tc.token)
				if strings.Contains(buf.String(), sig) || strings.Contains(buf.String(), tc.token[:40]) {
					t.Error("the token was logged")
				}
				if c, ok := rec["claims"].(map[string]any); !ok || c["tid"] != tenant.ID {
					t.Errorf("claims %v, want the caller's tid", rec["claims"])
				}
			}
		})
	}
}

// lockedBuffer is a bytes.Buffer safe for the server's and the test's
// goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *lockedBuffer) Reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.Reset()
}

func TestWriteErrorCompletesHandMadeErrors(t *testing.T) {
	tests := []struct {
		name   string
		err    *middleware.Error
		status int
		code   string
	}{
		{"nil", nil, 401, "invalid_token"},
		{"no reason", &middleware.Error{Description: "x"}, 401, "invalid_token"},
		{"reason only", &middleware.Error{Reason: middleware.ErrInsufficientScope}, 403, "insufficient_scope"},
		{"keys unavailable", &middleware.Error{Reason: middleware.ErrKeysUnavailable}, 503, ""},
		{"success status replaced", &middleware.Error{Reason: middleware.ErrTokenExpired, Status: 200}, 401, "invalid_token"},
		{"impossible status replaced", &middleware.Error{Reason: middleware.ErrMalformedRequest, Status: 7}, 400, "invalid_request"},
		{"custom status kept", &middleware.Error{Reason: middleware.ErrTokenExpired, Status: 401, Code: "invalid_token", Description: "custom"}, 401, "invalid_token"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			middleware.WriteError(rec, httptest.NewRequest(http.MethodGet, "/", nil), tc.err)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d", rec.Code, tc.status)
			}
			if tc.code != "" && challengeParams(t, rec.Header().Get("WWW-Authenticate"))["error"] != tc.code {
				t.Errorf("challenge %q, want error %q", rec.Header().Get("WWW-Authenticate"), tc.code)
			}
			if tc.status == 503 && rec.Header().Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
		})
	}
}

// What a handler or a Validate caller writes into the claims it gets never
// reaches the cache, another request, or a decision of the middleware.
func TestClaimsAreTheCallersOwn(t *testing.T) {
	tenant := entratest.NewTenant(t)
	a := newAuth(t, tenant)
	tok := tenant.AccessToken(entratest.Scopes("Data.Read"), entratest.Roles("Reader"), entratest.Claim("acct", 0), entratest.Claim("x_team", "blue"))
	tamper := func(c *claims.Claims) {
		c.Roles = append(c.Roles, "Admin")
		c.Roles[0] = "Admin"
		c.Scopes[0] = "Data.Write"
		c.Audience[0] = "someone-else"
		*c.AccountStatus = claims.AccountGuest
		c.TenantID = "tampered"
		if v, ok := c.Get("x_team"); ok {
			copy(v, `"red!"`)
		}
	}
	check := func(who string, c *claims.Claims) {
		t.Helper()
		var team string
		if err := c.Decode("x_team", &team); err != nil || team != "blue" ||
			!slices.Equal(c.Roles, []string{"Reader"}) || !slices.Equal(c.Scopes, []string{"Data.Read"}) ||
			c.Audience[0] != tenant.ClientID || *c.AccountStatus != claims.AccountMember || c.TenantID != tenant.ID {
			t.Errorf("%s sees claims changed by an earlier caller: roles %v, scopes %v, aud %v, acct %d, tid %s, x_team %q",
				who, c.Roles, c.Scopes, c.Audience, *c.AccountStatus, c.TenantID, team)
		}
	}

	// Validate's callers.
	for i := range 3 {
		c, err := a.Validate(t.Context(), tok)
		if err != nil {
			t.Fatal(err)
		}
		check(fmt.Sprintf("Validate call %d", i), c)
		tamper(c)
	}

	// Handlers, and the guards after them.
	r := chi.NewRouter()
	r.Use(a.RequireAuth)
	r.Get("/tamper", func(w http.ResponseWriter, r *http.Request) {
		c, _ := claims.FromContext(r.Context())
		check("a handler", c)
		tamper(c)
	})
	r.With(middleware.RequireAnyRole("Admin")).Get("/admin", func(w http.ResponseWriter, r *http.Request) {
		t.Error("the admin route let a Reader through")
	})
	r.With(middleware.RequireAnyScope("Data.Write")).Get("/write", func(w http.ResponseWriter, r *http.Request) {
		t.Error("the write route let a reader through")
	})
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	for range 3 {
		for path, want := range map[string]int{"/tamper": http.StatusOK, "/admin": http.StatusForbidden, "/write": http.StatusForbidden} {
			req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Errorf("GET %s after a handler changed its claims: %d, want %d", path, resp.StatusCode, want)
			}
		}
	}
	if a.Stats().Cache.Hits == 0 {
		t.Error("the token was never answered from the cache: the test proves nothing about it")
	}
}
