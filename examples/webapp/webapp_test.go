package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/entragate/entragate/examples/internal/env"
	"github.com/entragate/entragate/middleware/entratest"
)

// startOffline runs the whole offline stack on loopback, as `go run .`
// does with no configuration.
func startOffline(t *testing.T) *stack {
	t.Helper()
	for _, v := range variables {
		t.Setenv(v, "")
	}
	s, err := start(context.Background(), slog.New(slog.DiscardHandler), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// user is a browser without JavaScript: a cookie jar, following
// redirects, able to submit the fake tenant's forms.
type user struct {
	t      *testing.T
	client *http.Client
	last   string // the last page's URL
	visits []string
}

func newUser(t *testing.T, s *stack) *user {
	jar, _ := cookiejar.New(nil)
	u := &user{t: t}
	u.client = &http.Client{Jar: jar, Transport: s.offline.Tenant.Server().Client().Transport,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			u.visits = append(u.visits, req.URL.String())
			if len(via) > 20 {
				return errors.New("more than 20 redirects: a loop")
			}
			return nil
		}}
	return u
}

func (u *user) do(req *http.Request) (int, string) {
	u.t.Helper()
	resp, err := u.client.Do(req)
	if err != nil {
		u.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	u.last = resp.Request.URL.String()
	u.visits = append(u.visits, u.last)
	return resp.StatusCode, string(b)
}

func (u *user) get(url string) (int, string) {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	return u.do(req)
}

func (u *user) post(url string, form url.Values) (int, string) {
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return u.do(req)
}

var (
	requestField = regexp.MustCompile(`name="request" value="([^"]+)"`)
	userField    = regexp.MustCompile(`name="user" value="([^"]+)"`)
	scopeField   = regexp.MustCompile(`name="scope" value="([^"]+)"`)
)

// consent is what a user does on the consent page: grant the permissions
// it keeps, or cancel.
type consent struct {
	cancel bool
	keep   func(scope string) bool
}

var (
	grantAll    = consent{keep: func(string) bool { return true }}
	cancelAll   = consent{cancel: true}
	grantAllBut = func(suffix string) consent {
		return consent{keep: func(scope string) bool { return !strings.HasSuffix(scope, suffix) }}
	}
)

// signIn goes through the fake tenant's sign-in page as user i and its
// consent page, answering it as c says; it returns where the browser
// lands.
func (u *user) signIn(s *stack, i int, c consent) (int, string) {
	u.t.Helper()
	status, body := u.get(s.URL + "/login")
	if status != 200 || !strings.Contains(body, `name="user"`) {
		u.t.Fatalf("sign-in page: %d %s", status, body)
	}
	page := u.last
	status, body = u.post(page, url.Values{"request": {requestField.FindStringSubmatch(body)[1]}, "user": {userField.FindAllStringSubmatch(body, -1)[i][1]}})
	if !strings.Contains(body, "Permissions requested") {
		return status, body
	}
	form := url.Values{"request": {requestField.FindStringSubmatch(body)[1]}, "consent": {"accept"}}
	if c.cancel {
		form.Set("consent", "cancel")
	}
	for _, m := range scopeField.FindAllStringSubmatch(body, -1) {
		if !c.cancel && c.keep(m[1]) {
			form.Add("scope", m[1])
		}
	}
	return u.post(page, form)
}

func TestSignInProfileAndAPI(t *testing.T) {
	s := startOffline(t)
	u := newUser(t, s)
	status, body := u.signIn(s, 0, grantAll)
	if status != 200 || !strings.Contains(body, "Hello, Ada Lovelace") || !strings.HasSuffix(u.last, "/profile") {
		t.Fatalf("after sign-in: %d at %s:\n%s", status, u.last, body)
	}
	for _, want := range []string{`id="claim-preferred_username">ada@contoso.example`, `id="claim-tid">` + s.offline.Tenant.ID, `id="graph-displayName">Ada Lovelace`, `id="claim-sid">`} {
		if !strings.Contains(body, want) {
			t.Errorf("profile page lacks %q", want)
		}
	}
	status, body = u.get(s.URL + "/call-api")
	if status != 200 || !strings.Contains(body, `id="api-status">200`) || !strings.Contains(body, "Hello Ada Lovelace, this is protected data.") {
		t.Errorf("API page: %d\n%s", status, body)
	}
	// No token in any URL the browser visited, nor in any page.
	for _, v := range u.visits {
		if strings.Contains(v, "eyJ") {
			t.Errorf("a token in a URL: %s", v)
		}
	}
	if strings.Contains(body, "eyJ") {
		t.Error("a token in the API page")
	}

	// Sign-out clears the session here and at the fake tenant.
	status, body = u.post(s.URL+"/logout", nil)
	if status != 200 || !strings.Contains(body, `id="sign-in"`) {
		t.Errorf("after sign-out: %d at %s", status, u.last)
	}
	if status, _ := u.get(s.URL + "/profile"); status != 200 || !strings.HasSuffix(u.last, "/") {
		t.Errorf("profile after sign-out: %d at %s, want home", status, u.last)
	}
	if _, body := u.get(s.URL + "/login"); !strings.Contains(body, `name="user"`) {
		t.Error("after sign-out the fake tenant still signs in without asking")
	}
}

// A user who refuses SecureData.Read on the consent page is signed in,
// and the API page explains the API's 403.
func TestRefusedPermissionIsExplained(t *testing.T) {
	s := startOffline(t)
	u := newUser(t, s)
	status, body := u.signIn(s, 1, grantAllBut("SecureData.Read"))
	if status != 200 || !strings.Contains(body, "Hello, Grace Hopper") {
		t.Fatalf("after sign-in: %d\n%s", status, body)
	}
	_, body = u.get(s.URL + "/call-api")
	if !strings.Contains(body, `id="api-status">403`) || !strings.Contains(body, "does not carry the SecureData.Read permission") {
		t.Errorf("API page for a user who refused SecureData.Read:\n%s", body)
	}
}

// Declining the consent page entirely leaves the user signed out, told why.
func TestDeclinedConsent(t *testing.T) {
	s := startOffline(t)
	u := newUser(t, s)
	status, body := u.signIn(s, 0, cancelAll)
	if status != http.StatusForbidden || !strings.Contains(body, "You declined the permissions") {
		t.Errorf("declined consent: %d\n%s", status, body)
	}
	if status, _ := u.get(s.URL + "/profile"); status != 200 || !strings.HasSuffix(u.last, "/") {
		t.Errorf("profile after a declined sign-in: at %s, want home", u.last)
	}
}

// An answer that did not start in this browser is refused: state binds the
// sign-in to the session that started it.
func TestCallbackChecksState(t *testing.T) {
	s := startOffline(t)
	attacker, victim := newUser(t, s), newUser(t, s)
	// The attacker starts a sign-in, and stops at the redirect back.
	attacker.client.CheckRedirect = func(req *http.Request, _ []*http.Request) error {
		if strings.Contains(req.URL.Path, "/get_token") {
			return http.ErrUseLastResponse
		}
		return nil
	}
	_, body := attacker.get(s.URL + "/login")
	page := attacker.last
	form := url.Values{"request": {requestField.FindStringSubmatch(body)[1]}, "user": {userField.FindAllStringSubmatch(body, -1)[0][1]}}
	req, _ := http.NewRequest(http.MethodPost, page, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := attacker.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	_, body = attacker.do(mustReq(t, resp.Request.URL.String()))
	consent := url.Values{"request": {requestField.FindStringSubmatch(body)[1]}, "consent": {"accept"}}
	for _, m := range scopeField.FindAllStringSubmatch(body, -1) {
		consent.Add("scope", m[1])
	}
	req, _ = http.NewRequest(http.MethodPost, page, strings.NewReader(consent.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err = attacker.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	callback := resp.Header.Get("Location")
	if !strings.Contains(callback, "code=") {
		t.Fatalf("no code in %q", callback)
	}
	// The victim's browser is sent the attacker's callback.
	status, body := victim.get(callback)
	if status != http.StatusBadRequest || !strings.Contains(body, "state does not match") {
		t.Errorf("foreign callback: %d\n%s", status, body)
	}
	if _, body := victim.get(s.URL + "/"); strings.Contains(body, "Signed in") {
		t.Error("the victim was signed in as the attacker")
	}
}

func mustReq(t *testing.T, u string) *http.Request {
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// The session cookie is sealed, HttpOnly, Secure and SameSite=Lax, and
// holds no token.
func TestSessionCookie(t *testing.T) {
	s := startOffline(t)
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Get(s.URL + "/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cookies := resp.Cookies()
	if len(cookies) != 1 {
		t.Fatalf("cookies %v", cookies)
	}
	c := cookies[0]
	if !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || !strings.HasPrefix(c.Name, "__Host-") {
		t.Errorf("cookie %+v: want __Host-, HttpOnly, Secure, SameSite=Lax, Path=/", c)
	}
	if strings.Contains(c.Value, "eyJ") || strings.Contains(c.Value, "state") {
		t.Errorf("cookie is not sealed: %s", c.Value)
	}
	// The app's own key opens it; a tampered one is an empty session.
	open := func(value string) *session {
		req, _ := http.NewRequest(http.MethodGet, "/", nil)
		req.AddCookie(&http.Cookie{Name: cookieName, Value: value})
		return s.app.sessions.load(req)
	}
	if got := open(c.Value); got.State == "" || got.Nonce == "" || got.Verifier == "" {
		t.Fatalf("the app cannot open its own cookie: %+v", got)
	}
	sealed, _ := base64.RawURLEncoding.DecodeString(c.Value)
	for i := range []int{0, len(sealed) / 2, len(sealed) - 1} {
		tampered := append([]byte(nil), sealed...)
		tampered[[]int{0, len(sealed) / 2, len(sealed) - 1}[i]] ^= 1
		if got := open(base64.RawURLEncoding.EncodeToString(tampered)); got.State != "" {
			t.Errorf("a cookie with byte %d flipped opened: %+v", i, got)
		}
	}
}

// The sign-in request carries state, nonce and a PKCE S256 challenge, and
// the secrets behind them stay in the sealed cookie.
func TestSignInRequestBindsStateNonceAndPKCE(t *testing.T) {
	s := startOffline(t)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(s.URL + "/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	u, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	req, _ := http.NewRequest(http.MethodGet, "/", nil)
	for _, c := range resp.Cookies() {
		req.AddCookie(c)
	}
	sess := s.app.sessions.load(req)
	sum := sha256.Sum256([]byte(sess.Verifier))
	switch {
	case q.Get("state") == "" || q.Get("state") != sess.State:
		t.Errorf("state %q, session %q", q.Get("state"), sess.State)
	case q.Get("nonce") == "" || q.Get("nonce") != sess.Nonce:
		t.Errorf("nonce %q, session %q", q.Get("nonce"), sess.Nonce)
	case q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") != base64.RawURLEncoding.EncodeToString(sum[:]):
		t.Errorf("PKCE: %s %s", q.Get("code_challenge_method"), q.Get("code_challenge"))
	case strings.Contains(u.String(), sess.Verifier):
		t.Error("the PKCE verifier is in the URL")
	}
	if !strings.HasPrefix(u.String(), s.offline.Tenant.Server().PlainURL()) {
		t.Errorf("the browser is sent to %s, want the fake tenant's plain-http port", u)
	}
}

// After the app restarts (same session key), the cookie opens but the
// tokens are gone: the app says the user is signed out, not signed in.
func TestRestartSignsUsersOut(t *testing.T) {
	s := startOffline(t)
	u := newUser(t, s)
	if status, body := u.signIn(s, 0, grantAll); status != 200 || !strings.Contains(body, "Hello, Ada") {
		t.Fatalf("sign-in: %d", status)
	}
	// A new MSAL client: what a restart leaves.
	fresh, err := New(context.Background(), s.app.cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	fresh.sessions = s.app.sessions
	h := fresh.Handler()
	for _, path := range []string{"/", "/profile", "/call-api"} {
		req, _ := http.NewRequest(http.MethodGet, s.URL+path, nil)
		base, _ := url.Parse(s.URL)
		for _, c := range u.client.Jar.Cookies(base) {
			req.AddCookie(c)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if strings.Contains(rec.Body.String(), "Signed in as") || (path != "/" && rec.Code != http.StatusFound) {
			t.Errorf("%s after a restart: %d\n%s", path, rec.Code, rec.Body.String())
		}
	}
}

// A page on another site cannot sign the user out.
func TestCrossSiteSignOutIsRefused(t *testing.T) {
	s := startOffline(t)
	u := newUser(t, s)
	u.signIn(s, 0, grantAll)
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/logout", nil)
	req.Header.Set("Origin", "http://evil.example")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	status, _ := u.do(req)
	if status != http.StatusForbidden {
		t.Errorf("cross-site sign-out: %d, want 403", status)
	}
	if _, body := u.get(s.URL + "/"); !strings.Contains(body, "Signed in as") {
		t.Error("the user was signed out by another site")
	}
}

// cookies returns the browser's cookies for the app.
func (u *user) cookies(s *stack) []*http.Cookie {
	base, _ := url.Parse(s.URL)
	return u.client.Jar.Cookies(base)
}

// signedInWith reports whether a request carrying cookies is signed in.
func signedInWith(t *testing.T, s *stack, cookies []*http.Cookie) bool {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.URL+"/profile", nil)
	for _, c := range cookies {
		req.AddCookie(c)
	}
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Sign-out ends the session on the server: a cookie copied before it never
// shows the profile again, even after the same user signs in anew.
func TestSignOutEndsTheSessionOnTheServer(t *testing.T) {
	s := startOffline(t)
	u := newUser(t, s)
	if status, _ := u.signIn(s, 0, grantAll); status != 200 {
		t.Fatalf("sign-in: %d", status)
	}
	copied := u.cookies(s)
	if !signedInWith(t, s, copied) {
		t.Fatal("the copied cookie is not signed in before sign-out: the test proves nothing")
	}
	status, body := u.post(s.URL+"/logout", nil)
	if status != 200 || !strings.Contains(body, `id="signed-out"`) || !strings.HasSuffix(u.last, "/signed-out") {
		t.Errorf("after sign-out: %d at %s, want the signed-out confirmation", status, u.last)
	}
	if signedInWith(t, s, copied) {
		t.Error("a cookie copied before sign-out still shows the profile")
	}
	if status, _ := u.signIn(s, 0, grantAll); status != 200 {
		t.Fatalf("signing in anew: %d", status)
	}
	if signedInWith(t, s, copied) {
		t.Error("a cookie copied before sign-out shows the profile again once the user signed in anew")
	}
	if !signedInWith(t, s, u.cookies(s)) {
		t.Error("the new sign-in is not signed in")
	}
}

// A sign-out from a browser whose session an earlier sign-out ended (the
// same user's other browser) ends nothing of a session that began since:
// it deletes its own session's leftovers, not the account's tokens, which
// are the newer session's now.
func TestAStaleSignOutSparesANewerSession(t *testing.T) {
	s := startOffline(t)
	phone, laptop := newUser(t, s), newUser(t, s)
	for _, b := range []*user{phone, laptop} {
		if status, _ := b.signIn(s, 0, grantAll); status != 200 {
			t.Fatalf("sign-in: %d", status)
		}
	}
	if status, _ := phone.post(s.URL+"/logout", nil); status != 200 || signedInWith(t, s, laptop.cookies(s)) {
		t.Fatalf("the sign-out on the phone: %d; the laptop's session must end with it", status)
	}
	if status, _ := phone.signIn(s, 0, grantAll); status != 200 {
		t.Fatalf("signing in anew: %d", status)
	}
	if status, _ := laptop.post(s.URL+"/logout", nil); status != 200 {
		t.Errorf("the laptop's stale sign-out: %d", status)
	}
	if !signedInWith(t, s, phone.cookies(s)) {
		t.Error("a stale browser's sign-out ended the account's newer session")
	}
}

// A new sign-in in the same browser ends the session it replaces: a copy
// of the earlier cookie (of another account, here) opens nothing.
func TestSigningInAgainEndsTheReplacedSession(t *testing.T) {
	s := startOffline(t)
	u := newUser(t, s)
	if st, _ := u.signIn(s, 0, grantAll); st != 200 {
		t.Fatal(st)
	}
	earlier := u.cookies(s)
	if st, _ := u.signIn(s, 1, grantAll); st != 200 {
		t.Fatal(st)
	}
	if signedInWith(t, s, earlier) {
		t.Error("the session a new sign-in replaced still opens the earlier user's profile")
	}
	if !signedInWith(t, s, u.cookies(s)) {
		t.Error("the new sign-in is not signed in")
	}
}

// Signing out removes the account's tokens from MSAL's cache, so it ends
// the account's sessions in every browser: none comes back to life when
// the user signs in again elsewhere.
func TestSignOutEndsTheAccountsOtherSessions(t *testing.T) {
	s := startOffline(t)
	first, second := newUser(t, s), newUser(t, s)
	first.signIn(s, 0, grantAll)
	second.signIn(s, 0, grantAll)
	other := second.cookies(s)
	if !signedInWith(t, s, other) {
		t.Fatal("the second browser is not signed in: the test proves nothing")
	}
	first.post(s.URL+"/logout", nil)
	if st, _ := first.signIn(s, 0, grantAll); st != 200 {
		t.Fatal(st)
	}
	if signedInWith(t, s, other) {
		t.Error("a session of the account that signed out elsewhere is signed in again")
	}
	if !signedInWith(t, s, first.cookies(s)) {
		t.Error("the new sign-in is not signed in")
	}
}

// Offline, the web app keeps to loopback like the sample API.
func TestOfflineWebAppStaysOnLoopback(t *testing.T) {
	for _, v := range variables {
		t.Setenv(v, "")
	}
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0"} {
		s, err := start(context.Background(), slog.New(slog.DiscardHandler), addr)
		if err == nil {
			s.Close()
			t.Errorf("offline web app listened on %s", addr)
			continue
		}
		if !strings.Contains(err.Error(), "is not a loopback address: offline mode") {
			t.Errorf("ADDR=%s: %v, want the loopback explanation", addr, err)
		}
	}
}

// A user who declines every API permission sees why the app has no token
// for the API.
func TestDeclinedAPIPermissionsAreExplained(t *testing.T) {
	s := startOffline(t)
	u := newUser(t, s)
	keepGraphOnly := consent{keep: func(scope string) bool { return !strings.HasPrefix(scope, "api:") }}
	if status, body := u.signIn(s, 0, keepGraphOnly); status != 200 || !strings.Contains(body, "Hello, Ada") {
		t.Fatalf("sign-in keeping User.Read only: %d\n%s", status, body)
	}
	_, body := u.get(s.URL + "/call-api")
	if !strings.Contains(body, "you have not consented to any of its permissions") {
		t.Errorf("API page for a user who declined every API permission:\n%s", body)
	}
}

// A user who unticks User.Read learns that the app needs it, with a way to
// sign in again, not that "the identity provider did not accept the code".
func TestUntickedProfilePermissionIsExplained(t *testing.T) {
	s := startOffline(t)
	u := newUser(t, s)
	status, body := u.signIn(s, 0, grantAllBut("User.Read"))
	if status != http.StatusForbidden || !strings.Contains(body, "You did not grant this app the permission to read your profile (User.Read)") {
		t.Errorf("sign-in without User.Read: %d\n%s", status, body)
	}
	if !strings.Contains(body, "AADSTS65001") || !strings.Contains(body, `id="sign-in-again"`) {
		t.Errorf("the page lacks Entra's reason or a way to sign in again:\n%s", body)
	}
	if status, _ := u.get(s.URL + "/profile"); status != 200 || !strings.HasSuffix(u.last, "/") {
		t.Errorf("profile after a refused sign-in: at %s, want home", u.last)
	}
}

// Declining the whole consent page offers to sign in again.
func TestDeclinedConsentOffersToSignInAgain(t *testing.T) {
	s := startOffline(t)
	u := newUser(t, s)
	if _, body := u.signIn(s, 0, cancelAll); !strings.Contains(body, `id="sign-in-again"`) {
		t.Errorf("declined page without a sign-in link:\n%s", body)
	}
}

// In offline mode the API and the web app in one process share one
// Provider: each of the fake tenant's documents is loaded once.
func TestOfflineAPIAndWebAppShareTheirProvider(t *testing.T) {
	s := startOffline(t)
	u := newUser(t, s)
	if status, _ := u.signIn(s, 0, grantAll); status != 200 {
		t.Fatalf("sign-in: %d", status)
	}
	if _, body := u.get(s.URL + "/call-api"); !strings.Contains(body, `id="api-status">200`) {
		t.Fatalf("API call failed:\n%s", body)
	}
	// Key sets, which only entragate reads (MSAL reads the metadata too).
	srv := s.offline.Tenant.Server()
	if v2, v1 := srv.Requests(entratest.KeysV2), srv.Requests(entratest.KeysV1); v2 != 1 || v1 != 1 {
		t.Errorf("key sets loaded %d (v2.0) and %d (v1.0) times by the API and the web app, want once each", v2, v1)
	}
}

// A real-tenant configuration names the variable that is missing.
func TestMissingVariablesAreNamed(t *testing.T) {
	for _, v := range variables {
		t.Setenv(v, "")
	}
	t.Setenv("AZURE_TENANT_ID", "72f988bf-86f1-41af-91ab-2d7cd011db47")
	t.Setenv("AZURE_CLIENT_ID", "6e74172b-be56-4843-9ff4-e66a39bb12e3")
	_, err := start(context.Background(), slog.New(slog.DiscardHandler), "127.0.0.1:0")
	if err == nil || !strings.Contains(err.Error(), "AZURE_CLIENT_SECRET is not set") {
		t.Errorf("%v, want the missing AZURE_CLIENT_SECRET named", err)
	}
	t.Setenv("AZURE_CLIENT_SECRET", "s")
	_, err = start(context.Background(), slog.New(slog.DiscardHandler), "127.0.0.1:0")
	if err == nil || !strings.Contains(err.Error(), "API_SCOPES is not set") {
		t.Errorf("%v, want the missing API_SCOPES named", err)
	}
}

// confirmStepUp presses the app's button for the sign-in a claims
// challenge asked for, and returns where the browser lands.
func (u *user) confirmStepUp(s *stack, body string) (int, string) {
	u.t.Helper()
	if !strings.Contains(body, `id="continue-step-up"`) {
		u.t.Fatalf("expected the app's step-up button at %s, got %s", u.last, body)
	}
	return u.post(s.URL+"/step-up", nil)
}

// stepUp answers the fake tenant's step-up page ("verify" or "cancel") and
// returns where the browser lands.
func (u *user) stepUp(body, answer string) (int, string) {
	u.t.Helper()
	if !strings.Contains(body, `id="step-up"`) {
		u.t.Fatalf("expected the step-up page at %s, got %s", u.last, body)
	}
	return u.post(u.last, url.Values{"request": {requestField.FindStringSubmatch(body)[1]}, "stepup": {answer}})
}

func (u *user) authorizeVisits() int {
	n := 0
	for _, v := range u.visits {
		if strings.Contains(v, "/oauth2/v2.0/authorize") {
			n++
		}
	}
	return n
}

// The step-up round trip: the confidential route's claims challenge sends
// the user to Entra with its claims, the step-up page, back with a
// stronger token, and the API answers; the token is kept, so the next
// visit needs no step-up.
func TestStepUpRoundTrip(t *testing.T) {
	s := startOffline(t)
	u := newUser(t, s)
	if st, _ := u.signIn(s, 0, grantAll); st != 200 {
		t.Fatal(st)
	}
	before := u.authorizeVisits()
	_, body := u.get(s.URL + "/confidential")
	if u.authorizeVisits() != before {
		t.Fatal("a GET of the page sent the browser to sign in: a link from elsewhere could")
	}
	_, body = u.confirmStepUp(s, body)
	if !strings.Contains(u.last, "claims=") {
		t.Errorf("step-up request %s carries no claims", u.last)
	}
	status, body := u.stepUp(body, "verify")
	if status != 200 || !strings.HasSuffix(u.last, "/confidential") || !strings.Contains(body, `id="api-ok"`) ||
		!strings.Contains(body, "confidential data") || !strings.Contains(body, "signed in again for this") {
		t.Fatalf("after the step-up: %d at %s\n%s", status, u.last, body)
	}
	if n := u.authorizeVisits() - before; n != 2 { // the request, and the step-up page's answer
		t.Errorf("%d authorize visits, want one request answered once", n)
	}
	before = u.authorizeVisits()
	if _, body := u.get(s.URL + "/confidential"); !strings.Contains(body, `id="api-ok"`) || u.authorizeVisits() != before {
		t.Errorf("second visit: at %s after %d authorize visits\n%s", u.last, u.authorizeVisits()-before, body)
	}
	// The stronger token serves the other route too.
	if _, body := u.get(s.URL + "/call-api"); !strings.Contains(body, `id="api-ok"`) {
		t.Errorf("/call-api after the step-up: %s", body)
	}
}

// Cancelling the step-up leaves the user signed in with the data closed;
// an API that challenges again after a step-up is shown, not chased.
func TestStepUpNeverLoops(t *testing.T) {
	s := startOffline(t)
	u := newUser(t, s)
	u.signIn(s, 0, grantAll)
	_, body := u.get(s.URL + "/confidential")
	_, body = u.confirmStepUp(s, body)
	status, body := u.stepUp(body, "cancel")
	if status != 403 || !strings.Contains(body, "did not complete the extra sign-in") || !strings.Contains(body, `id="sign-out"`) {
		t.Errorf("cancelled step-up: %d %s", status, body)
	}

	// An API whose challenge no token satisfies.
	stubborn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="", error="insufficient_claims", claims="`+
			base64.StdEncoding.EncodeToString([]byte(`{"access_token":{"acrs":{"essential":true,"value":"c9"}}}`))+`"`)
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":"insufficient_claims"}`))
	}))
	t.Cleanup(stubborn.Close)
	s.app.cfg.APIURL = stubborn.URL
	before := u.authorizeVisits()
	_, body = u.get(s.URL + "/confidential")
	_, body = u.confirmStepUp(s, body)
	status, body = u.stepUp(body, "verify")
	if status != 200 || !strings.Contains(body, "still asks for more") || !strings.HasSuffix(u.last, "/confidential") {
		t.Errorf("challenged again after the step-up: %d at %s\n%s", status, u.last, body)
	}
	if n := u.authorizeVisits() - before; n != 2 {
		t.Errorf("%d authorize visits, want one step-up and no more", n)
	}
}

// The step-up button answers this app's own pages only: a form on another
// site (whose POST carries an Origin of its own) starts nothing.
func TestStepUpButtonIsSameOrigin(t *testing.T) {
	s := startOffline(t)
	u := newUser(t, s)
	u.signIn(s, 0, grantAll)
	u.get(s.URL + "/confidential")
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/step-up", nil)
	req.Header.Set("Origin", "https://attacker.example")
	if status, _ := u.do(req); status != http.StatusForbidden {
		t.Errorf("a cross-origin POST: %d, want 403", status)
	}
}

// Shared state is all or nothing: Redis without the key that seals the
// cache, or without the session key the instances share, is an error
// naming the variable.
func TestSharedStateConfiguration(t *testing.T) {
	key := base64.StdEncoding.EncodeToString(make([]byte, 32))
	for name, tc := range map[string]struct {
		env  map[string]string
		says string
	}{
		"Redis without a cache key":   {map[string]string{"REDIS_URL": "redis://127.0.0.1:6379/0"}, "TOKEN_CACHE_KEY"},
		"a cache key without Redis":   {map[string]string{"TOKEN_CACHE_KEY": key}, "REDIS_URL"},
		"Redis without a session key": {map[string]string{"REDIS_URL": "redis://127.0.0.1:6379/0", "TOKEN_CACHE_KEY": key}, "SESSION_KEY"},
		"a short cache key": {map[string]string{"REDIS_URL": "redis://127.0.0.1:6379/0", "TOKEN_CACHE_KEY": "c2hvcnQ=",
			"SESSION_KEY": key}, "32 bytes"},
		"a middle tier without its scope": {map[string]string{"AZURE_TENANT_ID": entratest.NewGUID(), "AZURE_CLIENT_ID": entratest.NewGUID(),
			"AZURE_CLIENT_SECRET": "s", "API_SCOPES": "api://x/y", "MIDDLE_TIER_URL": "http://127.0.0.1:8090"}, "MIDDLE_TIER_SCOPES"},
	} {
		t.Run(name, func(t *testing.T) {
			for _, v := range variables {
				t.Setenv(v, "")
			}
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			s, err := start(context.Background(), slog.New(slog.DiscardHandler), "127.0.0.1:0")
			if err == nil {
				s.Close()
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.says) {
				t.Errorf("%v, want it to name %s", err, tc.says)
			}
		})
	}
}

// AUTHORITY_BROWSER_HOST replaces the authority's host in the URLs the
// browser opens, the default authority's too when AZURE_AUTHORITY_HOST is
// not set, and nothing else.
func TestAuthorityBrowserHost(t *testing.T) {
	for name, tc := range map[string]struct{ authorityHost, from, want string }{
		"the default authority": {"", "https://login.microsoftonline.com/contoso/oauth2/v2.0/authorize?client_id=x",
			"http://127.0.0.1:9999/contoso/oauth2/v2.0/authorize?client_id=x"},
		"a configured authority": {"https://127.0.0.1:8443", "https://127.0.0.1:8443/contoso/oauth2/v2.0/logout",
			"http://127.0.0.1:9999/contoso/oauth2/v2.0/logout"},
		"another URL": {"https://127.0.0.1:8443", "http://localhost:8000/profile", "http://localhost:8000/profile"},
	} {
		t.Run(name, func(t *testing.T) {
			for _, v := range variables {
				t.Setenv(v, "")
			}
			t.Setenv("AZURE_TENANT_ID", "contoso.example")
			t.Setenv("AZURE_CLIENT_ID", entratest.NewGUID())
			t.Setenv("AZURE_CLIENT_SECRET", "s")
			t.Setenv("API_SCOPES", "api://x/SecureData.Read")
			t.Setenv("AZURE_AUTHORITY_HOST", tc.authorityHost)
			t.Setenv("AUTHORITY_BROWSER_HOST", "http://127.0.0.1:9999")
			cfg, off, err := configure(t.Context(), env.New(variables...), "http://localhost:8000", false, slog.New(slog.DiscardHandler))
			if err != nil || off != nil {
				t.Fatalf("%v %v", err, off)
			}
			if got := cfg.BrowserURL(tc.from); got != tc.want {
				t.Errorf("%s: %s, want %s", tc.from, got, tc.want)
			}
		})
	}
}
