package entratest_test

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/entragate/entragate/middleware"
	"github.com/entragate/entragate/middleware/entratest"
)

// oauthClient is an OAuth client written from RFC 6749, 7636 and OpenID
// Connect Core, independent of the fake it talks to: a browser (cookie jar,
// no automatic redirects) and a confidential client's back channel.
type oauthClient struct {
	t        *testing.T
	tenant   *entratest.Tenant
	app      *entratest.App
	browser  *http.Client
	back     *http.Client
	redirect string
}

func newOAuthClient(t *testing.T, tenant *entratest.Tenant, app *entratest.App) *oauthClient {
	jar, _ := cookiejar.New(nil)
	return &oauthClient{
		t: t, tenant: tenant, app: app, redirect: app.RedirectURIs[0],
		browser: &http.Client{Jar: jar, Transport: tenant.Server().Client().Transport,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		back: tenant.Server().Client(),
	}
}

func (c *oauthClient) authorizeURL(params url.Values) string {
	return c.tenant.Server().URL + "/" + c.tenant.ID + "/oauth2/v2.0/authorize?" + params.Encode()
}

func pkce(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func (c *oauthClient) params(scope, state, nonce, verifier string) url.Values {
	return url.Values{
		"client_id": {c.app.ClientID}, "response_type": {"code"}, "redirect_uri": {c.redirect}, "scope": {scope},
		"state": {state}, "nonce": {nonce}, "code_challenge": {pkce(verifier)}, "code_challenge_method": {"S256"},
	}
}

// page fetches a URL in the browser: the status, the body, the Location.
func (c *oauthClient) get(u string) (int, string, string) {
	c.t.Helper()
	resp, err := c.browser.Get(u)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header.Get("Location")
}

func (c *oauthClient) post(u string, form url.Values) (int, string, string) {
	c.t.Helper()
	resp, err := c.browser.PostForm(u, form)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header.Get("Location")
}

var (
	hiddenRequest = regexp.MustCompile(`name="request" value="([^"]+)"`)
	userButton    = regexp.MustCompile(`name="user" value="([^"]+)"`)
	scopeBox      = regexp.MustCompile(`name="scope" value="([^"]+)"`)
)

// signIn walks the sign-in page (choosing user i) and, if shown, the
// consent page (granting the permissions keep allows), and returns the
// redirect back to the app.
func (c *oauthClient) signIn(authURL string, user int, keep func(scope string) bool) *url.URL {
	c.t.Helper()
	status, body, loc := c.get(authURL)
	if status == http.StatusFound {
		return c.parse(loc)
	}
	if status != http.StatusOK || !strings.Contains(body, "Sign in") && !strings.Contains(body, "Permissions requested") {
		c.t.Fatalf("authorize: %d %s", status, body)
	}
	if strings.Contains(body, `name="user"`) {
		users := userButton.FindAllStringSubmatch(body, -1)
		status, body, loc = c.post(authURL, url.Values{"request": {hiddenRequest.FindStringSubmatch(body)[1]}, "user": {users[user][1]}})
		if status == http.StatusFound {
			return c.parse(loc)
		}
	}
	if !strings.Contains(body, "Permissions requested") {
		c.t.Fatalf("expected the consent page, got %d %s", status, body)
	}
	form := url.Values{"request": {hiddenRequest.FindStringSubmatch(body)[1]}, "consent": {"accept"}}
	if keep == nil {
		form.Set("consent", "cancel")
	}
	for _, m := range scopeBox.FindAllStringSubmatch(body, -1) {
		if keep != nil && keep(m[1]) {
			form.Add("scope", m[1])
		}
	}
	status, body, loc = c.post(authURL, form)
	if status != http.StatusFound {
		c.t.Fatalf("consent: %d %s", status, body)
	}
	return c.parse(loc)
}

func (c *oauthClient) parse(loc string) *url.URL {
	u, err := url.Parse(loc)
	if err != nil || !strings.HasPrefix(loc, c.redirect) {
		c.t.Fatalf("redirect to %q, want the app's redirect URI %s", loc, c.redirect)
	}
	return u
}

// tokenResponse is the token endpoint's answer, success or error.
type tokenResponse struct {
	status       int
	AccessToken  string `json:"access_token"`
	IDToken      string `json:"id_token"`
	RefreshToken string `json:"refresh_token"`
	ClientInfo   string `json:"client_info"`
	Scope        string `json:"scope"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	Error        string `json:"error"`
	Description  string `json:"error_description"`
	Codes        []int  `json:"error_codes"`
}

func (c *oauthClient) token(form url.Values) tokenResponse {
	c.t.Helper()
	resp, err := c.back.PostForm(c.tenant.Server().URL+"/"+c.tenant.ID+"/oauth2/v2.0/token", form)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var tr tokenResponse
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil {
		c.t.Fatal(err)
	}
	tr.status = resp.StatusCode
	return tr
}

func (c *oauthClient) redeem(code, verifier, scope string) tokenResponse {
	return c.token(url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {c.redirect},
		"client_id": {c.app.ClientID}, "client_secret": {c.app.Secret}, "code_verifier": {verifier}, "scope": {scope}, "client_info": {"1"}})
}

// oauthTenant is a TLS fake tenant whose API exposes two scopes, with a
// web app, a daemon and a second user.
func oauthTenant(t *testing.T) (*entratest.Tenant, *entratest.App, *entratest.App) {
	srv := entratest.NewServer(entratest.TLS())
	t.Cleanup(srv.Close)
	tenant := srv.NewTenant()
	tenant.ExposeScopes("SecureData.Read", "access_as_user")
	tenant.AddUser(entratest.User{Name: "Grace Hopper", GivenName: "Grace", FamilyName: "Hopper"})
	web := tenant.RegisterApp(entratest.App{Name: "Contoso web", Secret: "s3cret", RedirectURIs: []string{"http://localhost:8000/get_token", "http://localhost:8000/"}})
	daemon := tenant.RegisterApp(entratest.App{Name: "Contoso daemon", Secret: "d43mon", Roles: []string{"SecureData.Read.All"}})
	return tenant, web, daemon
}

func apiAuth(t *testing.T, tenant *entratest.Tenant, clientID string) *middleware.Authenticator {
	cfg := tenant.Config()
	cfg.ClientID = clientID
	cfg.HTTPClient = tenant.Server().Client()
	a, err := middleware.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func TestAuthorizationCodeFlowWithPKCE(t *testing.T) {
	tenant, web, _ := oauthTenant(t)
	c := newOAuthClient(t, tenant, web)
	api := apiAuth(t, tenant, tenant.ClientID)
	webAuth, err := api.Provider().NewIDTokenVerifier(middleware.IDTokenConfig{ClientID: web.ClientID})
	if err != nil {
		t.Fatal(err)
	}
	apiScope := "api://" + tenant.ClientID + "/SecureData.Read"
	scopes := "openid profile email offline_access User.Read " + apiScope + " api://" + tenant.ClientID + "/access_as_user"

	back := c.signIn(c.authorizeURL(c.params(scopes, "st4te", "n0nce", "verifier-0123456789-0123456789-0123456789-pkce")), 0, func(string) bool { return true })
	q := back.Query()
	if q.Get("state") != "st4te" || q.Get("code") == "" || q.Get("error") != "" {
		t.Fatalf("redirect %s: want the code and the state", back)
	}

	tr := c.redeem(q.Get("code"), "verifier-0123456789-0123456789-0123456789-pkce", apiScope+" openid profile email offline_access")
	if tr.status != 200 || tr.TokenType != "Bearer" || tr.ExpiresIn <= 0 || tr.RefreshToken == "" || tr.ClientInfo == "" {
		t.Fatalf("token response %+v", tr)
	}
	if !strings.Contains(tr.Scope, apiScope) {
		t.Errorf("granted scope %q, want %s", tr.Scope, apiScope)
	}
	ac, err := api.Validate(t.Context(), tr.AccessToken)
	if err != nil || !ac.HasScope("SecureData.Read") || ac.ClientAppID != web.ClientID || ac.ObjectID != tenant.User.ObjectID {
		t.Fatalf("access token for the API: %v, %+v", err, ac)
	}
	idc, err := webAuth.Verify(t.Context(), tr.IDToken, "n0nce")
	if err != nil || idc.Name != tenant.User.Name || idc.SessionID == "" || idc.AuthTime.IsZero() || idc.Email == "" {
		t.Fatalf("ID token: %v, %+v", err, idc)
	}
	var info struct{ UID, UTID string }
	b, _ := base64.RawURLEncoding.DecodeString(tr.ClientInfo)
	if json.Unmarshal(b, &info) != nil || info.UID != tenant.User.ObjectID || info.UTID != tenant.ID {
		t.Errorf("client_info %s", b)
	}

	// The refresh token gets a Graph token, which Graph's /me accepts and
	// the API refuses as a Graph token.
	graph := c.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}, "client_id": {web.ClientID},
		"client_secret": {web.Secret}, "scope": {"User.Read openid profile offline_access"}})
	if graph.status != 200 || graph.AccessToken == "" {
		t.Fatalf("refresh for Graph: %+v", graph)
	}
	if _, err := api.Validate(t.Context(), graph.AccessToken); !errors.Is(err, middleware.ErrGraphToken) {
		t.Errorf("Graph token sent to the API: %v, want ErrGraphToken", err)
	}
	me := graphMe(t, tenant, graph.AccessToken)
	if me["displayName"] != tenant.User.Name || me["id"] != tenant.User.ObjectID {
		t.Errorf("/v1.0/me: %v", me)
	}
	if st := graphMeStatus(t, tenant, tr.AccessToken); st != http.StatusUnauthorized {
		t.Errorf("/v1.0/me with the API's token: %d, want 401", st)
	}

	// The code is single-use, and using it again revokes the refresh
	// token it gave (RFC 6749 §4.1.2).
	again := c.redeem(q.Get("code"), "verifier-0123456789-0123456789-0123456789-pkce", apiScope)
	if again.status != 400 || again.Error != "invalid_grant" || !strings.HasPrefix(again.Description, "AADSTS54005") {
		t.Errorf("reused code: %+v, want invalid_grant AADSTS54005", again)
	}
	revoked := c.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}, "client_id": {web.ClientID},
		"client_secret": {web.Secret}, "scope": {"User.Read"}})
	if revoked.Error != "invalid_grant" {
		t.Errorf("refresh token of a reused code: %+v, want invalid_grant", revoked)
	}

	// SSO: the browser is signed in and consented, so a new request goes
	// straight back with a code, unless prompt says otherwise.
	status, _, loc := c.get(c.authorizeURL(c.params(scopes, "s2", "n2", "v2-0123456789-0123456789-0123456789-012345-pkce")))
	if status != http.StatusFound || !strings.Contains(loc, "code=") {
		t.Errorf("second sign-in: %d %s, want a code at once", status, loc)
	}
	for _, prompt := range []string{"login", "select_account", "consent"} {
		p := c.params(scopes, "s3", "n3", "v3-0123456789-0123456789-0123456789-012345-pkce")
		p.Set("prompt", prompt)
		status, body, _ := c.get(c.authorizeURL(p))
		want := "Sign in"
		switch prompt {
		case "select_account":
			want = "Pick an account"
		case "consent":
			want = "Permissions requested"
		}
		if status != 200 || !strings.Contains(body, want) {
			t.Errorf("prompt=%s: %d, want the page %q", prompt, status, want)
		}
	}

	// Sign-out returns only to a registered address.
	status, body, loc := c.get(tenant.Server().URL + "/" + tenant.ID + "/oauth2/v2.0/logout?post_logout_redirect_uri=" + url.QueryEscape("http://localhost:8000/phish"))
	if status != http.StatusOK || loc != "" || !strings.Contains(body, "signed-out") {
		t.Errorf("logout to an unregistered address: %d %q, want the signed-out page", status, loc)
	}
	// Signing out ends the session: the sign-in page is back.
	status, _, loc = c.get(tenant.Server().URL + "/" + tenant.ID + "/oauth2/v2.0/logout?post_logout_redirect_uri=" + url.QueryEscape("http://localhost:8000/"))
	if status != http.StatusFound || loc != "http://localhost:8000/" {
		t.Errorf("logout: %d %q", status, loc)
	}
	status, body, _ = c.get(c.authorizeURL(c.params(scopes, "s4", "n4", "v4-0123456789-0123456789-0123456789-012345-pkce")))
	if status != 200 || !strings.Contains(body, `name="user"`) {
		t.Errorf("after logout: %d, want the sign-in page", status)
	}
}

func graphMeStatus(t *testing.T, tenant *entratest.Tenant, token string) int {
	req, _ := http.NewRequest(http.MethodGet, tenant.Server().URL+"/v1.0/me", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := tenant.Server().Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func graphMe(t *testing.T, tenant *entratest.Tenant, token string) map[string]any {
	req, _ := http.NewRequest(http.MethodGet, tenant.Server().URL+"/v1.0/me", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := tenant.Server().Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return m
}

// Only the permissions the user granted reach the access token.
func TestConsentIsPerPermission(t *testing.T) {
	tenant, web, _ := oauthTenant(t)
	c := newOAuthClient(t, tenant, web)
	api := apiAuth(t, tenant, tenant.ClientID)
	read := "api://" + tenant.ClientID + "/SecureData.Read"
	basic := "api://" + tenant.ClientID + "/access_as_user"
	back := c.signIn(c.authorizeURL(c.params("openid offline_access "+basic+" "+read, "s", "n", "verifier-0123456789-0123456789-0123456789-pkce")), 1,
		func(scope string) bool { return !strings.HasSuffix(scope, "SecureData.Read") })
	// Asking for a permission the user refused: consent is required, as
	// Entra answers; it never issues fewer permissions than asked.
	both := c.redeem(back.Query().Get("code"), "verifier-0123456789-0123456789-0123456789-pkce", basic+" "+read+" openid offline_access")
	if both.Error != "invalid_grant" || !strings.HasPrefix(both.Description, "AADSTS65001") {
		t.Fatalf("refused permission asked: %+v, want AADSTS65001", both)
	}
	// Asking for the granted permission alone: signed in at once (the
	// session and the consent stand), and the token lacks SecureData.Read.
	back = c.signIn(c.authorizeURL(c.params("openid offline_access "+basic, "s", "n", "verifier-0123456789-0123456789-0123456789-pkce")), 1, nil)
	tr := c.redeem(back.Query().Get("code"), "verifier-0123456789-0123456789-0123456789-pkce", basic+" openid offline_access")
	if tr.status != 200 {
		t.Fatalf("%+v", tr)
	}
	ac, err := api.Validate(t.Context(), tr.AccessToken)
	if err != nil || ac.HasScope("SecureData.Read") || !ac.HasScope("access_as_user") || ac.Name != "Grace Hopper" {
		t.Errorf("token of a user who refused SecureData.Read: %v, %+v", err, ac)
	}
	// .default takes what was granted.
	def := c.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}, "client_id": {web.ClientID},
		"client_secret": {web.Secret}, "scope": {"api://" + tenant.ClientID + "/.default"}})
	if dc, err := api.Validate(t.Context(), def.AccessToken); err != nil || dc.HasScope("SecureData.Read") || !dc.HasScope("access_as_user") {
		t.Errorf(".default: %v, %+v", err, def)
	}
}

func TestAuthorizeErrors(t *testing.T) {
	tenant, web, _ := oauthTenant(t)
	c := newOAuthClient(t, tenant, web)
	good := c.params("openid User.Read", "st", "n", "verifier-0123456789-0123456789-0123456789-pkce")
	with := func(k, v string) url.Values {
		p := url.Values{}
		for key, vs := range good {
			p[key] = append([]string(nil), vs...)
		}
		if v == "" {
			p.Del(k)
		} else {
			p.Set(k, v)
		}
		return p
	}
	// Never redirected: the app or its address cannot be trusted.
	for name, p := range map[string]url.Values{
		"unknown client":                with("client_id", entratest.NewGUID()),
		"unregistered redirect":         with("redirect_uri", "https://evil.example/callback"),
		"redirect differing by a slash": with("redirect_uri", "http://localhost:8000/get_token/"),
	} {
		status, body, loc := c.get(c.authorizeURL(p))
		if status != http.StatusBadRequest || loc != "" || !strings.Contains(body, "AADSTS") {
			t.Errorf("%s: %d %q, want an error page with an AADSTS code", name, status, loc)
		}
	}
	// Sent back to the app, with the state.
	for name, tc := range map[string]struct {
		p    url.Values
		code string
	}{
		"token response type":    {with("response_type", "token"), "unsupported_response_type"},
		"unknown API scope":      {with("scope", "openid api://"+tenant.ClientID+"/Admin"), "invalid_scope"},
		"unknown resource":       {with("scope", "openid https://storage.azure.com/.default"), "invalid_scope"},
		"unknown prompt":         {with("prompt", "always"), "invalid_request"},
		"silent with no session": {with("prompt", "none"), "login_required"},
		"unknown response mode":  {with("response_mode", "smoke_signals"), "invalid_request"},
		"unknown PKCE method":    {with("code_challenge_method", "S512"), "invalid_request"},
		"short PKCE challenge":   {with("code_challenge", "abc"), "invalid_request"},
	} {
		status, _, loc := c.get(c.authorizeURL(tc.p))
		u, _ := url.Parse(loc)
		if status != http.StatusFound || u.Query().Get("error") != tc.code || u.Query().Get("state") != "st" || !strings.HasPrefix(u.Query().Get("error_description"), "AADSTS") {
			t.Errorf("%s: %d %s, want a redirect with error=%s and the state", name, status, loc, tc.code)
		}
	}
	// A user who cancels the consent page.
	back := c.signIn(c.authorizeURL(good), 0, nil)
	if back.Query().Get("error") != "access_denied" || back.Query().Get("state") != "st" {
		t.Errorf("declined consent: %s, want error=access_denied", back)
	}
}

func TestTokenEndpointErrors(t *testing.T) {
	tenant, web, daemon := oauthTenant(t)
	c := newOAuthClient(t, tenant, web)
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	tenant.Server().SetClock(func() time.Time { return time.Unix(0, now.Load()) })
	code := func() string {
		p := c.params("openid User.Read", "s", "n", "verifier-0123456789-0123456789-0123456789-pkce")
		p.Set("prompt", "login")
		return c.signIn(c.authorizeURL(p), 0, func(string) bool { return true }).Query().Get("code")
	}
	tests := []struct {
		name   string
		form   url.Values
		status int
		err    string
		aadsts string
	}{
		{"wrong secret", url.Values{"grant_type": {"authorization_code"}, "code": {code()}, "client_id": {web.ClientID}, "client_secret": {"guess"}, "redirect_uri": {c.redirect}}, 401, "invalid_client", "AADSTS7000215"},
		{"unknown client", url.Values{"grant_type": {"client_credentials"}, "client_id": {entratest.NewGUID()}, "client_secret": {"x"}, "scope": {"api://" + tenant.ClientID + "/.default"}}, 400, "unauthorized_client", "AADSTS700016"},
		{"PKCE mismatch", url.Values{"grant_type": {"authorization_code"}, "code": {code()}, "client_id": {web.ClientID}, "client_secret": {web.Secret}, "redirect_uri": {c.redirect}, "code_verifier": {"another-verifier-0123456789-0123456789-012-pkce"}}, 400, "invalid_grant", "AADSTS501481"},
		{"PKCE verifier missing", url.Values{"grant_type": {"authorization_code"}, "code": {code()}, "client_id": {web.ClientID}, "client_secret": {web.Secret}, "redirect_uri": {c.redirect}}, 400, "invalid_grant", "AADSTS501481"},
		{"other redirect URI", url.Values{"grant_type": {"authorization_code"}, "code": {code()}, "client_id": {web.ClientID}, "client_secret": {web.Secret}, "redirect_uri": {"http://localhost:8000/other"}, "code_verifier": {"verifier-0123456789-0123456789-0123456789-pkce"}}, 400, "invalid_grant", "AADSTS500117"},
		{"code of another client", url.Values{"grant_type": {"authorization_code"}, "code": {code()}, "client_id": {daemon.ClientID}, "client_secret": {daemon.Secret}, "redirect_uri": {c.redirect}, "code_verifier": {"verifier-0123456789-0123456789-0123456789-pkce"}}, 400, "invalid_grant", "AADSTS70000"},
		{"made-up code", url.Values{"grant_type": {"authorization_code"}, "code": {"1.abc"}, "client_id": {web.ClientID}, "client_secret": {web.Secret}, "redirect_uri": {c.redirect}}, 400, "invalid_grant", "AADSTS9002313"},
		{"client credentials without .default", url.Values{"grant_type": {"client_credentials"}, "client_id": {daemon.ClientID}, "client_secret": {daemon.Secret}, "scope": {"api://" + tenant.ClientID + "/SecureData.Read"}}, 400, "invalid_scope", "AADSTS1002012"},
		{"unsupported grant", url.Values{"grant_type": {"password"}, "client_id": {web.ClientID}, "client_secret": {web.Secret}}, 400, "unsupported_grant_type", "AADSTS70003"},
		{"bad refresh token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"1.nope"}, "client_id": {web.ClientID}, "client_secret": {web.Secret}, "scope": {"User.Read"}}, 400, "invalid_grant", "AADSTS9002313"},
	}
	for _, tc := range tests {
		tr := c.token(tc.form)
		if tr.status != tc.status || tr.Error != tc.err || !strings.HasPrefix(tr.Description, tc.aadsts) || len(tr.Codes) != 1 {
			t.Errorf("%s: %d %s %q, want %d %s %s", tc.name, tr.status, tr.Error, tr.Description, tc.status, tc.err, tc.aadsts)
		}
	}
	// Codes expire after ten minutes.
	old := code()
	now.Add(int64(11 * time.Minute))
	tr := c.redeem(old, "verifier-0123456789-0123456789-0123456789-pkce", "openid User.Read")
	if tr.Error != "invalid_grant" || !strings.HasPrefix(tr.Description, "AADSTS70008") {
		t.Errorf("expired code: %+v, want AADSTS70008", tr)
	}
}

func TestClientCredentials(t *testing.T) {
	tenant, web, daemon := oauthTenant(t)
	api := apiAuth(t, tenant, tenant.ClientID)
	c := newOAuthClient(t, tenant, web)
	tr := c.token(url.Values{"grant_type": {"client_credentials"}, "client_id": {daemon.ClientID}, "client_secret": {daemon.Secret},
		"scope": {"api://" + tenant.ClientID + "/.default"}})
	if tr.status != 200 || tr.IDToken != "" || tr.RefreshToken != "" {
		t.Fatalf("%+v", tr)
	}
	ac, err := api.Validate(t.Context(), tr.AccessToken)
	if err != nil || !ac.IsAppOnly() || !ac.HasRole("SecureData.Read.All") || ac.ClientAppID != daemon.ClientID || ac.ObjectID != daemon.ObjectID {
		t.Errorf("app-only token: %v, %+v", err, ac)
	}
	// An app granted no role gets a token without roles, which the API
	// refuses, as Entra and Microsoft.Identity.Web do.
	none := c.token(url.Values{"grant_type": {"client_credentials"}, "client_id": {web.ClientID}, "client_secret": {web.Secret},
		"scope": {"api://" + tenant.ClientID + "/.default"}})
	if _, err := api.Validate(t.Context(), none.AccessToken); !errors.Is(err, middleware.ErrNotAccessToken) {
		t.Errorf("app without roles: %v, want ErrNotAccessToken", err)
	}
}

// A TLS server answers https and plain http on one port, with the same
// issuer (the https one, which OAuth clients compare with the authority).
func TestTLSServerAnswersBothSchemes(t *testing.T) {
	srv := entratest.NewServer(entratest.TLS())
	t.Cleanup(srv.Close)
	tenant := srv.NewTenant()
	if !strings.HasPrefix(srv.URL, "https://") || !strings.HasPrefix(srv.PlainURL(), "http://") || srv.Certificate() == nil {
		t.Fatalf("URL %s, PlainURL %s", srv.URL, srv.PlainURL())
	}
	for _, base := range []string{srv.URL, srv.PlainURL()} {
		resp, err := srv.Client().Get(base + "/" + tenant.ID + "/v2.0/.well-known/openid-configuration")
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&doc)
		resp.Body.Close()
		if resp.StatusCode != 200 || doc["issuer"] != srv.URL+"/"+tenant.ID+"/v2.0" {
			t.Errorf("%s: %d issuer %v", base, resp.StatusCode, doc["issuer"])
		}
	}
	if _, err := http.Get(srv.URL); err == nil {
		t.Error("a client that does not trust the certificate connected")
	}
}

// PKCE cannot be downgraded or guessed at: a verifier without a challenge,
// a malformed verifier, and a wrong one are refused, and a failed attempt
// spends the code.
func TestPKCEIsEnforced(t *testing.T) {
	tenant, web, _ := oauthTenant(t)
	c := newOAuthClient(t, tenant, web)
	const verifier = "verifier-0123456789-0123456789-0123456789-pkce"
	code := func(withChallenge bool) string {
		p := c.params("openid User.Read", "s", "n", verifier)
		if !withChallenge {
			p.Del("code_challenge")
			p.Del("code_challenge_method")
		}
		p.Set("prompt", "login")
		return c.signIn(c.authorizeURL(p), 0, func(string) bool { return true }).Query().Get("code")
	}
	tests := []struct {
		name          string
		challenge     bool
		verifier, say string
	}{
		{"verifier without a challenge (downgrade)", false, verifier, "had no code_challenge"},
		{"one-character verifier", true, "x", "malformed"},
		{"verifier with a forbidden character", true, verifier + "!", "malformed"},
		{"wrong verifier", true, "another-verifier-0123456789-0123456789-0123456789", "does not match"},
	}
	for _, tc := range tests {
		cd := code(tc.challenge)
		tr := c.redeem(cd, tc.verifier, "openid User.Read")
		if tr.Error != "invalid_grant" || !strings.Contains(tr.Description, tc.say) {
			t.Errorf("%s: %+v, want invalid_grant saying %q", tc.name, tr, tc.say)
		}
		if tc.challenge {
			if again := c.redeem(cd, verifier, "openid User.Read"); again.Error != "invalid_grant" {
				t.Errorf("%s: the code still worked with the right verifier after a failed attempt: %+v", tc.name, again)
			}
		}
	}
	// Without PKCE at all (a confidential client may), the code works.
	if tr := c.redeem(code(false), "", "openid User.Read"); tr.status != 200 {
		t.Errorf("code without PKCE: %+v", tr)
	}
	// plain is accepted, as RFC 7636 allows.
	p := c.params("openid User.Read", "s", "n", verifier)
	p.Set("code_challenge", verifier)
	p.Set("code_challenge_method", "plain")
	p.Set("prompt", "login")
	if tr := c.redeem(c.signIn(c.authorizeURL(p), 0, func(string) bool { return true }).Query().Get("code"), verifier, "openid User.Read"); tr.status != 200 {
		t.Errorf("plain PKCE: %+v", tr)
	}
}

// The authorization response comes in the response mode asked.
func TestResponseModes(t *testing.T) {
	tenant, web, _ := oauthTenant(t)
	c := newOAuthClient(t, tenant, web)
	c.signIn(c.authorizeURL(c.params("openid User.Read", "s", "n", "verifier-0123456789-0123456789-0123456789-pkce")), 0, func(string) bool { return true })
	p := c.params("openid User.Read", "st", "n", "verifier-0123456789-0123456789-0123456789-pkce")
	p.Set("response_mode", "fragment")
	if status, _, loc := c.get(c.authorizeURL(p)); status != http.StatusFound || !strings.Contains(loc, "#") || !strings.Contains(loc, "state=st") || strings.Contains(loc, "?code=") {
		t.Errorf("fragment: %d %s", status, loc)
	}
	p.Set("response_mode", "form_post")
	status, body, _ := c.get(c.authorizeURL(p))
	if status != http.StatusOK || !strings.Contains(body, `method="post" action="http://localhost:8000/get_token"`) || !strings.Contains(body, `name="code"`) || !strings.Contains(body, `name="state" value="st"`) {
		t.Errorf("form_post: %d\n%s", status, body)
	}
}

// A public client has no secret and must use PKCE.
func TestPublicClients(t *testing.T) {
	tenant, _, _ := oauthTenant(t)
	native := tenant.RegisterApp(entratest.App{Name: "Native", Public: true, RedirectURIs: []string{"http://localhost:8000/get_token"}})
	c := newOAuthClient(t, tenant, native)
	const verifier = "verifier-0123456789-0123456789-0123456789-pkce"
	p := c.params("openid User.Read", "s", "n", verifier)
	p.Del("code_challenge")
	p.Del("code_challenge_method")
	status, _, loc := c.get(c.authorizeURL(p))
	if u, _ := url.Parse(loc); status != http.StatusFound || !strings.HasPrefix(u.Query().Get("error_description"), "AADSTS9002325") {
		t.Errorf("public client without PKCE: %d %s", status, loc)
	}
	back := c.signIn(c.authorizeURL(c.params("openid User.Read", "s", "n", verifier)), 0, func(string) bool { return true })
	tr := c.token(url.Values{"grant_type": {"authorization_code"}, "code": {back.Query().Get("code")}, "redirect_uri": {c.redirect},
		"client_id": {native.ClientID}, "code_verifier": {verifier}, "scope": {"openid User.Read"}})
	if tr.status != 200 || tr.AccessToken == "" {
		t.Errorf("public client without a secret: %+v", tr)
	}
	with := c.token(url.Values{"grant_type": {"client_credentials"}, "client_id": {native.ClientID}, "scope": {"https://graph.microsoft.com/.default"}})
	if with.Error != "unauthorized_client" {
		t.Errorf("public client with client credentials: %+v", with)
	}
}

// .default asks for the permissions the registration configures, and
// gets a token with those the user granted; scope names compare without
// regard to case, as Entra's do.
func TestDefaultScopeAndCase(t *testing.T) {
	tenant, _, _ := oauthTenant(t)
	app := tenant.RegisterApp(entratest.App{Name: "Configured", Secret: "s", RedirectURIs: []string{"http://localhost:8000/get_token"},
		Permissions: []string{"User.Read", "api://" + tenant.ClientID + "/SecureData.Read"}})
	c := newOAuthClient(t, tenant, app)
	api := apiAuth(t, tenant, tenant.ClientID)
	const verifier = "verifier-0123456789-0123456789-0123456789-pkce"
	page := c.authorizeURL(c.params("openid offline_access api://"+tenant.ClientID+"/.default", "s", "n", verifier))
	status, body, _ := c.get(page)
	if status != 200 {
		t.Fatalf("authorize with .default: %d", status)
	}
	_, consent, _ := c.post(page, url.Values{"request": {hiddenRequest.FindStringSubmatch(body)[1]}, "user": {userButton.FindAllStringSubmatch(body, -1)[0][1]}})
	if !strings.Contains(consent, "SecureData.Read") {
		t.Fatalf("consent page for .default does not list the configured permission:\n%s", consent)
	}
	form := url.Values{"request": {hiddenRequest.FindStringSubmatch(consent)[1]}, "consent": {"accept"}}
	for _, m := range scopeBox.FindAllStringSubmatch(consent, -1) {
		form.Add("scope", m[1])
	}
	_, _, loc := c.post(page, form)
	back := c.parse(loc)
	tr := c.redeem(back.Query().Get("code"), verifier, "api://"+tenant.ClientID+"/.default openid offline_access")
	if ac, err := api.Validate(t.Context(), tr.AccessToken); err != nil || !ac.HasScope("SecureData.Read") {
		t.Fatalf(".default token: %v %+v", err, tr)
	}
	lower := c.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}, "client_id": {app.ClientID},
		"client_secret": {app.Secret}, "scope": {"API://" + tenant.ClientID + "/securedata.read"}})
	if ac, err := api.Validate(t.Context(), lower.AccessToken); err != nil || !ac.HasScope("SecureData.Read") {
		t.Errorf("scope in another case: %v %+v", err, lower)
	}
}

// Client credentials in HTTP Basic are form-urlencoded (RFC 6749 §2.3.1);
// an expired refresh token gets Entra's code for it.
func TestBasicAuthAndExpiredRefreshTokens(t *testing.T) {
	tenant, _, _ := oauthTenant(t)
	app := tenant.RegisterApp(entratest.App{Secret: "p+ss/w=rd&x", Roles: []string{"SecureData.Read.All"}})
	req, _ := http.NewRequest(http.MethodPost, tenant.Server().URL+"/"+tenant.ID+"/oauth2/v2.0/token",
		strings.NewReader(url.Values{"grant_type": {"client_credentials"}, "scope": {"api://" + tenant.ClientID + "/.default"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(app.ClientID), url.QueryEscape(app.Secret))
	resp, err := tenant.Server().Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("Basic with a form-urlencoded secret: %d", resp.StatusCode)
	}

	web := tenant.RegisterApp(entratest.App{Secret: "w", RedirectURIs: []string{"http://localhost:9000/cb"}})
	c := newOAuthClient(t, tenant, web)
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	tenant.Server().SetClock(func() time.Time { return time.Unix(0, now.Load()) })
	back := c.signIn(c.authorizeURL(c.params("openid offline_access User.Read", "s", "n", "verifier-0123456789-0123456789-0123456789-pkce")), 0, func(string) bool { return true })
	tr := c.redeem(back.Query().Get("code"), "verifier-0123456789-0123456789-0123456789-pkce", "openid offline_access User.Read")
	now.Add(int64(91 * 24 * time.Hour))
	old := c.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}, "client_id": {web.ClientID},
		"client_secret": {web.Secret}, "scope": {"User.Read"}})
	if !strings.HasPrefix(old.Description, "AADSTS700082") {
		t.Errorf("expired refresh token: %+v, want AADSTS700082", old)
	}
}

// The token endpoint answers JSON, even for a tenant it does not know.
func TestTokenEndpointErrorsAreJSON(t *testing.T) {
	tenant, web, _ := oauthTenant(t)
	resp, err := tenant.Server().Client().PostForm(tenant.Server().URL+"/"+entratest.NewGUID()+"/oauth2/v2.0/token",
		url.Values{"grant_type": {"client_credentials"}, "client_id": {web.ClientID}, "client_secret": {web.Secret}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e map[string]any
	if resp.StatusCode != 400 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") || json.NewDecoder(resp.Body).Decode(&e) != nil ||
		!strings.HasPrefix(e["error_description"].(string), "AADSTS90002") {
		t.Errorf("unknown tenant: %d %s %v", resp.StatusCode, resp.Header.Get("Content-Type"), e)
	}
}

// A claims request for an authentication context (what a claims challenge
// asks the client to send) shows a step-up page after sign-in; tokens of
// the code, and of refresh tokens from it, carry acrs. A refresh token
// without the step-up cannot give it: interaction_required, with the
// claims. Client capabilities asked for come back as xms_cc.
func TestClaimsRequestStepsUp(t *testing.T) {
	tenant, web, _ := oauthTenant(t)
	c := newOAuthClient(t, tenant, web)
	api := apiAuth(t, tenant, tenant.ClientID)
	apiScope := "api://" + tenant.ClientID + "/SecureData.Read"
	scopes := "openid offline_access " + apiScope
	const verifier = "verifier-0123456789-0123456789-0123456789-pkce"
	c1 := `{"access_token":{"acrs":{"essential":true,"value":"c1"},"xms_cc":{"values":["cp1"]}}}`

	// A plain sign-in first: its refresh token has no step-up.
	back := c.signIn(c.authorizeURL(c.params(scopes, "s", "n", verifier)), 0, func(string) bool { return true })
	plain := c.redeem(back.Query().Get("code"), verifier, apiScope+" offline_access")
	if ac, err := api.Validate(t.Context(), plain.AccessToken); err != nil || len(ac.AuthContexts) != 0 {
		t.Fatalf("plain sign-in: %v %+v", err, ac)
	}
	refused := c.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {plain.RefreshToken}, "client_id": {web.ClientID},
		"client_secret": {web.Secret}, "scope": {apiScope}, "claims": {c1}})
	if refused.status != 400 || refused.Error != "interaction_required" || !strings.HasPrefix(refused.Description, "AADSTS50076") {
		t.Fatalf("refresh asking for c1 without a step-up: %+v", refused)
	}

	// prompt=none cannot step up.
	p := c.params(scopes, "s", "n", verifier)
	p.Set("claims", c1)
	p.Set("prompt", "none")
	if _, _, loc := c.get(c.authorizeURL(p)); !strings.Contains(loc, "error=interaction_required") {
		t.Errorf("prompt=none with an unsatisfied context: %s", loc)
	}

	// The interactive request: the session is signed in, so the step-up
	// page comes at once; Cancel refuses, Verify gives the code.
	p.Del("prompt")
	status, body, _ := c.get(c.authorizeURL(p))
	if status != 200 || !strings.Contains(body, `id="step-up"`) || !strings.Contains(body, "c1") {
		t.Fatalf("authorize with claims: %d %s, want the step-up page", status, body)
	}
	_, _, loc := c.post(c.authorizeURL(p), url.Values{"request": {hiddenRequest.FindStringSubmatch(body)[1]}, "stepup": {"cancel"}})
	if !strings.Contains(loc, "error=access_denied") {
		t.Errorf("cancelled step-up: %s", loc)
	}
	_, body, _ = c.get(c.authorizeURL(p))
	_, _, loc = c.post(c.authorizeURL(p), url.Values{"request": {hiddenRequest.FindStringSubmatch(body)[1]}, "stepup": {"verify"}})
	stepped := c.redeem(c.parse(loc).Query().Get("code"), verifier, apiScope+" offline_access")
	ac, err := api.Validate(t.Context(), stepped.AccessToken)
	if err != nil || !ac.HasAuthContext("c1") || !ac.CanHandleClaimsChallenges() {
		t.Fatalf("token after the step-up: %v %+v", err, ac)
	}

	// Its refresh token keeps the context; the session remembers the
	// step-up, so the next request asking for c1 needs no page.
	again := c.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {stepped.RefreshToken}, "client_id": {web.ClientID},
		"client_secret": {web.Secret}, "scope": {apiScope}, "claims": {c1}})
	if ac, err := api.Validate(t.Context(), again.AccessToken); again.status != 200 || err != nil || !ac.HasAuthContext("c1") {
		t.Errorf("refresh after the step-up: %+v %v", again, err)
	}
	if status, _, loc := c.get(c.authorizeURL(p)); status != http.StatusFound || !strings.Contains(loc, "code=") {
		t.Errorf("a second request for c1 in the same session: %d %s, want a code at once", status, loc)
	}

	p.Set("claims", `{"access_token":{"acrs":`)
	if _, _, loc := c.get(c.authorizeURL(p)); !strings.Contains(loc, "error=invalid_request") {
		t.Errorf("malformed claims: %s", loc)
	}
}

// middleTier registers, beside the tenant's API, a middle-tier API that
// the web app calls and that calls the tenant's API and Graph as the user.
func middleTier(t *testing.T, tenant *entratest.Tenant, web *entratest.App) *entratest.App {
	t.Helper()
	return tenant.RegisterApp(entratest.App{
		Name: "Orders middle tier", Secret: "m1ddle", Scopes: []string{"access_as_user"},
		Permissions:  []string{"api://" + tenant.ClientID + "/SecureData.Read", "User.Read"},
		KnownClients: []string{web.ClientID},
	})
}

func (c *oauthClient) onBehalfOf(app *entratest.App, assertion, scope string, extra ...string) tokenResponse {
	form := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "requested_token_use": {"on_behalf_of"},
		"client_id": {app.ClientID}, "client_secret": {app.Secret}, "assertion": {assertion}, "scope": {scope}}
	for i := 0; i+1 < len(extra); i += 2 {
		form.Set(extra[i], extra[i+1])
	}
	return c.token(form)
}

// The on-behalf-of grant: a user signs in to the web app, which calls the
// middle tier; consenting to it (a known client) consents to the middle
// tier's own permissions too, and the middle tier exchanges the user's
// token for the tenant's API and for Graph, as the user. Entra's rules
// refuse the rest.
func TestOnBehalfOf(t *testing.T) {
	tenant, web, daemon := oauthTenant(t)
	mid := middleTier(t, tenant, web)
	c := newOAuthClient(t, tenant, web)
	api := apiAuth(t, tenant, tenant.ClientID)
	midAuth, err := api.Provider().NewAuthenticator(middleware.APIConfig{ClientID: mid.ClientID})
	if err != nil {
		t.Fatal(err)
	}
	const verifier = "verifier-0123456789-0123456789-0123456789-pkce"
	midScope := "api://" + mid.ClientID + "/access_as_user"
	var shown []string
	back := c.signIn(c.authorizeURL(c.params("openid offline_access "+midScope, "s", "n", verifier)), 0, func(scope string) bool {
		shown = append(shown, scope)
		return true
	})
	if !slices.Contains(shown, mid.ClientID+"|api:SecureData.Read") || !slices.Contains(shown, mid.ClientID+"|graph:User.Read") {
		t.Fatalf("consent page %v: want the middle tier's own permissions beside its scope", shown)
	}
	tr := c.redeem(back.Query().Get("code"), verifier, midScope+" offline_access")
	userToken := tr.AccessToken
	if ac, err := midAuth.Validate(t.Context(), userToken); err != nil || ac.ClientAppID != web.ClientID || !ac.HasScope("access_as_user") {
		t.Fatalf("the web app's token for the middle tier: %v %+v", err, ac)
	}

	down := c.onBehalfOf(mid, userToken, "api://"+tenant.ClientID+"/SecureData.Read openid profile offline_access")
	ac, err := api.Validate(t.Context(), down.AccessToken)
	if down.status != 200 || err != nil || ac.ClientAppID != mid.ClientID || ac.ObjectID != tenant.User.ObjectID || !ac.HasScope("SecureData.Read") {
		t.Fatalf("on-behalf-of token for the API: %+v %v %+v", down, err, ac)
	}
	graph := c.onBehalfOf(mid, userToken, "https://graph.microsoft.com/User.Read")
	if me := graphMe(t, tenant, graph.AccessToken); me["id"] != tenant.User.ObjectID {
		t.Errorf("Graph /me with the on-behalf-of token: %v", me)
	}

	appOnly := c.token(url.Values{"grant_type": {"client_credentials"}, "client_id": {daemon.ClientID}, "client_secret": {daemon.Secret},
		"scope": {"api://" + mid.ClientID + "/.default"}})
	for name, tc := range map[string]struct {
		assertion, scope, claims, err, code string
	}{
		"a token for another API":      {down.AccessToken, "User.Read", "", "invalid_grant", "AADSTS50013"},
		"an app-only token":            {appOnly.AccessToken, "User.Read", "", "invalid_grant", "AADSTS50013"},
		"an expired token":             {tenant.AccessToken(entratest.Audience(mid.ClientID), entratest.Expired()), "User.Read", "", "invalid_grant", "AADSTS500133"},
		"a token of an unknown key":    {tenant.AccessToken(entratest.Audience(mid.ClientID), entratest.SignedWith(tenant.Server().NewKey())), "User.Read", "", "invalid_grant", "AADSTS50013"},
		"a permission never consented": {userToken, "Mail.Read", "", "invalid_grant", "AADSTS65001"},
		"a step-up the user has not":   {userToken, "User.Read", `{"access_token":{"acrs":{"essential":true,"value":"c1"}}}`, "interaction_required", "AADSTS50076"},
	} {
		t.Run(name, func(t *testing.T) {
			var extra []string
			if tc.claims != "" {
				extra = []string{"claims", tc.claims}
			}
			got := c.onBehalfOf(mid, tc.assertion, tc.scope, extra...)
			if got.status != 400 || got.Error != tc.err || !strings.HasPrefix(got.Description, tc.code) {
				t.Errorf("%+v, want %s %s", got, tc.err, tc.code)
			}
		})
	}
}

// Client assertions authenticate apps without secrets: one signed with a
// registered certificate, for the tenant's token endpoint, once; or a
// token of a trusted external issuer for the registered subject.
func TestClientAssertions(t *testing.T) {
	tenant, web, _ := oauthTenant(t)
	srv := tenant.Server()
	cert, other := srv.NewKey(), srv.NewKey()
	cluster := srv.NewWorkloadIssuer("aks-prod")
	app := tenant.RegisterApp(entratest.App{Name: "Reports daemon", Roles: []string{"SecureData.Read.All"},
		Certificates: []*x509.Certificate{cert.X509()},
		Federated:    []entratest.FederatedCredential{{Issuer: cluster.URL, Subject: "system:serviceaccount:reports:daemon"}}})
	endpoint := srv.URL + "/" + tenant.ID + "/oauth2/v2.0/token"
	sha256Thumbprint := func(k *entratest.Key, enc *base64.Encoding) string {
		sum := sha256.Sum256(k.Certificate())
		return enc.EncodeToString(sum[:])
	}
	signNamed := func(k *entratest.Key, method jwt.SigningMethod, header, thumbprint string, claims jwt.MapClaims) string {
		tok := jwt.NewWithClaims(method, claims)
		tok.Header[header] = thumbprint
		raw, err := tok.SignedString(k.PrivateKey())
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	sign := func(k *entratest.Key, method jwt.SigningMethod, claims jwt.MapClaims) string {
		tok := jwt.NewWithClaims(method, claims)
		tok.Header["x5t"] = k.ID
		raw, err := tok.SignedString(k.PrivateKey())
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	now := time.Now()
	assertion := func(edit func(jwt.MapClaims)) jwt.MapClaims {
		c := jwt.MapClaims{"aud": endpoint, "iss": app.ClientID, "sub": app.ClientID, "jti": entratest.NewGUID(),
			"nbf": now.Unix(), "iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix()}
		if edit != nil {
			edit(c)
		}
		return c
	}
	c := newOAuthClient(t, tenant, web) // its back channel only
	request := func(a string) tokenResponse {
		return c.token(url.Values{"grant_type": {"client_credentials"}, "client_id": {app.ClientID}, "scope": {"api://" + tenant.ClientID + "/.default"},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {a}})
	}
	replayed := sign(cert, jwt.SigningMethodRS256, assertion(nil))
	// Expired a minute ago: within the five minutes of clock skew Entra
	// allows, so accepted once, and remembered for as long as that lasts.
	lateButAccepted := sign(cert, jwt.SigningMethodRS256, assertion(func(c jwt.MapClaims) {
		c["nbf"], c["iat"], c["exp"] = now.Add(-5*time.Minute).Unix(), now.Add(-5*time.Minute).Unix(), now.Add(-time.Minute).Unix()
	}))
	tests := []struct {
		name      string
		assertion string
		ok        bool
	}{
		{"certificate, RS256", replayed, true},
		{"the same assertion again", replayed, false},
		{"certificate, PS256", sign(cert, jwt.SigningMethodPS256, assertion(nil)), true},
		// MSAL names the certificate by its SHA-256 thumbprint in standard
		// base64 with padding.
		{"x5t#S256, standard base64", signNamed(cert, jwt.SigningMethodPS256, "x5t#S256", sha256Thumbprint(cert, base64.StdEncoding), assertion(nil)), true},
		{"x5t#S256, base64url", signNamed(cert, jwt.SigningMethodPS256, "x5t#S256", sha256Thumbprint(cert, base64.RawURLEncoding), assertion(nil)), true},
		{"x5t#S256 of another certificate", signNamed(cert, jwt.SigningMethodPS256, "x5t#S256", sha256Thumbprint(other, base64.StdEncoding), assertion(nil)), false},
		{"an unregistered certificate", sign(other, jwt.SigningMethodRS256, assertion(nil)), false},
		{"another audience", sign(cert, jwt.SigningMethodRS256, assertion(func(c jwt.MapClaims) { c["aud"] = "https://login.example.com/token" })), false},
		{"expired", sign(cert, jwt.SigningMethodRS256, assertion(func(c jwt.MapClaims) { c["exp"] = now.Add(-10 * time.Minute).Unix() })), false},
		{"a lifetime of a day", sign(cert, jwt.SigningMethodRS256, assertion(func(c jwt.MapClaims) { c["exp"] = now.Add(24 * time.Hour).Unix() })), false},
		{"another subject", sign(cert, jwt.SigningMethodRS256, assertion(func(c jwt.MapClaims) { c["sub"] = entratest.NewGUID() })), false},
		{"no jti", sign(cert, jwt.SigningMethodRS256, assertion(func(c jwt.MapClaims) { delete(c, "jti") })), false},
		{"expired within the clock skew", lateButAccepted, true},
		{"the same, replayed within the clock skew", lateButAccepted, false},
		{"issued 20 hours ahead, no nbf", sign(cert, jwt.SigningMethodRS256, assertion(func(c jwt.MapClaims) {
			delete(c, "nbf")
			c["iat"], c["exp"] = now.Add(20*time.Hour).Unix(), now.Add(20*time.Hour+10*time.Minute).Unix()
		})), false},
		{"no exp", sign(cert, jwt.SigningMethodRS256, assertion(func(c jwt.MapClaims) { delete(c, "exp") })), false},
		{"federated, the service account", cluster.Token("system:serviceaccount:reports:daemon", time.Hour), true},
		{"federated, another account", cluster.Token("system:serviceaccount:reports:other", time.Hour), false},
		{"federated, another audience", cluster.TokenFor("system:serviceaccount:reports:daemon", "api://other", time.Hour), false},
		{"federated, expired", cluster.Token("system:serviceaccount:reports:daemon", -time.Minute), false},
		{"federated, untrusted issuer", srv.NewWorkloadIssuer("elsewhere").Token("system:serviceaccount:reports:daemon", time.Hour), false},
	}
	for _, tc := range tests { // in order: the second use of an assertion is a replay
		t.Run(tc.name, func(t *testing.T) {
			got := request(tc.assertion)
			if tc.ok != (got.status == 200) || !tc.ok && (got.status != 401 || got.Error != "invalid_client") {
				t.Errorf("%+v, want ok %v", got, tc.ok)
			}
		})
	}
}
