package main

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"
	msalerrors "github.com/AzureAD/microsoft-authentication-library-for-go/apps/errors"
	"golang.org/x/oauth2"

	"github.com/entragate/entragate/claims"
	entragate "github.com/entragate/entragate/middleware"
)

// Config is the web app's registration and the services it calls.
type Config struct {
	// AuthorityHost and TenantID name the Entra authority (MSAL's
	// authority is AuthorityHost/TenantID).
	AuthorityHost, TenantID string
	// ClientID and ClientSecret are the web app's registration.
	ClientID, ClientSecret string
	// RedirectURI is where Entra sends the user back (…/get_token);
	// HomeURL where sign-out returns.
	RedirectURI, HomeURL string
	// APIScopes are the scopes of the protected API the app calls, and
	// APIURL the API itself.
	APIScopes []string
	APIURL    string
	// GraphURL is Microsoft Graph (https://graph.microsoft.com).
	GraphURL string
	// SessionKey seals the session cookie (32 bytes).
	SessionKey []byte
	// HTTPClient reaches Entra, Graph and the API.
	HTTPClient *http.Client
	// InstanceDiscovery lets MSAL check the authority with Microsoft;
	// off for a fake tenant, which Microsoft does not know.
	InstanceDiscovery bool
	// BrowserURL, when set, turns an Entra URL into the one the user's
	// browser should open (offline: the fake tenant's plain-http port).
	BrowserURL func(string) string
	Logger     *slog.Logger
}

// App is the tutorial's Flask app in Go: sign-in with MSAL, the ID token
// verified by entragate, Graph /me, and the protected API.
type App struct {
	cfg      Config
	msal     confidential.Client
	ids      *entragate.Authenticator // verifies the app's ID tokens
	sessions *sessions
}

// graphScope is the Microsoft Graph permission the profile page uses.
const graphScope = "User.Read"

// New builds the app: MSAL for the protocol, entragate for ID tokens.
func New(ctx context.Context, cfg Config) (*App, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.BrowserURL == nil {
		cfg.BrowserURL = func(u string) string { return u }
	}
	cred, err := confidential.NewCredFromSecret(cfg.ClientSecret)
	if err != nil {
		return nil, err
	}
	app, err := confidential.New(cfg.AuthorityHost+"/"+cfg.TenantID, cfg.ClientID, cred,
		confidential.WithHTTPClient(cfg.HTTPClient), confidential.WithInstanceDiscovery(cfg.InstanceDiscovery))
	if err != nil {
		return nil, fmt.Errorf("MSAL: %w", err)
	}
	ids, err := entragate.New(ctx, entragate.Config{
		TenantID: cfg.TenantID, ClientID: cfg.ClientID, AuthorityHost: cfg.AuthorityHost,
		HTTPClient: cfg.HTTPClient, Logger: cfg.Logger,
	})
	if err != nil {
		return nil, err
	}
	s, err := newSessions(cfg.SessionKey)
	if err != nil {
		ids.Close()
		return nil, err
	}
	return &App{cfg: cfg, msal: app, ids: ids, sessions: s}, nil
}

// Close releases the ID-token verifier.
func (a *App) Close() { a.ids.Close() }

// Handler serves the app's pages.
func (a *App) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", a.home)
	mux.HandleFunc("GET /login", a.login)
	mux.HandleFunc("GET /get_token", a.callback)
	mux.HandleFunc("GET /profile", a.profile)
	mux.HandleFunc("GET /call-api", a.callAPI)
	mux.HandleFunc("POST /logout", a.logout)
	// The sign-out form redirects to Entra's logout page: browsers apply
	// form-action to where a form's answer redirects, too.
	entra, _ := url.Parse(a.cfg.BrowserURL(a.cfg.AuthorityHost))
	// Cross-site POSTs (a page elsewhere signing the user out) are refused:
	// SameSite=Lax keeps the cookie from them, but not the answer's
	// cookie-clearing and redirect.
	return securityHeaders(http.NewCrossOriginProtection().Handler(mux), entra.Scheme+"://"+entra.Host)
}

// securityHeaders keeps pages out of caches and frames, and lets forms
// post only to the app (and the sign-out reach Entra).
func securityHeaders(next http.Handler, entra string) http.Handler {
	csp := "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' " + entra + "; frame-ancestors 'none'"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Cache-Control", "no-store")
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Security-Policy", csp)
		next.ServeHTTP(w, r)
	})
}

func (a *App) home(w http.ResponseWriter, r *http.Request) {
	s := a.sessions.load(r)
	if s.signedIn() {
		// The tokens live in this process's MSAL cache: after a restart
		// the session's account is gone, and so is the sign-in.
		if acct, err := a.msal.Account(r.Context(), s.AccountID); err != nil || acct.HomeAccountID == "" {
			a.sessions.clear(w)
			s = &session{}
		}
	}
	render(w, http.StatusOK, homePage, pageData{Session: s})
}

// login sends the browser to Entra's sign-in page. MSAL builds the
// authorization URL; it has no option for state, nonce or PKCE in a
// confidential client's URL, so the app adds them, keeping their secrets
// in the sealed session: state binds the answer to this browser, nonce the
// ID token to this sign-in, the PKCE verifier the code to this app.
func (a *App) login(w http.ResponseWriter, r *http.Request) {
	// openid for the ID token, offline_access for the refresh token MSAL
	// needs to get the API's token later; MSAL for Go adds them to token
	// requests but not to this URL.
	scopes := append([]string{"openid", "profile", "offline_access", graphScope}, a.cfg.APIScopes...)
	authURL, err := a.msal.AuthCodeURL(r.Context(), a.cfg.ClientID, a.cfg.RedirectURI, scopes)
	if err != nil {
		a.fail(w, http.StatusBadGateway, "The sign-in could not start: the identity provider's metadata could not be read.", err)
		return
	}
	s := a.sessions.load(r)
	s.State, s.Nonce, s.Verifier = oauth2.GenerateVerifier(), oauth2.GenerateVerifier(), oauth2.GenerateVerifier()
	u, err := url.Parse(authURL)
	if err != nil {
		a.fail(w, http.StatusInternalServerError, "The sign-in could not start.", err)
		return
	}
	q := u.Query()
	q.Set("state", s.State)
	q.Set("nonce", s.Nonce)
	q.Set("code_challenge", oauth2.S256ChallengeFromVerifier(s.Verifier))
	q.Set("code_challenge_method", "S256")
	q.Set("prompt", "select_account")
	u.RawQuery = q.Encode()
	if err := a.sessions.save(w, s); err != nil {
		a.fail(w, http.StatusInternalServerError, "The sign-in could not start.", err)
		return
	}
	http.Redirect(w, r, a.cfg.BrowserURL(u.String()), http.StatusFound)
}

// callback is the tutorial's /get_token: Entra sends the browser back
// with a code (or an error); MSAL redeems the code; entragate verifies the
// ID token against the nonce of this sign-in.
func (a *App) callback(w http.ResponseWriter, r *http.Request) {
	s := a.sessions.load(r)
	q := r.URL.Query()
	state, nonce, verifier := s.State, s.Nonce, s.Verifier
	s.State, s.Nonce, s.Verifier = "", "", "" // one use, whatever happens
	if err := a.sessions.save(w, s); err != nil {
		a.fail(w, http.StatusInternalServerError, "The sign-in could not finish.", err)
		return
	}
	if state == "" || subtle.ConstantTimeCompare([]byte(state), []byte(q.Get("state"))) != 1 {
		a.fail(w, http.StatusBadRequest, "This sign-in answer does not belong to a sign-in started in this browser (the state does not match). Start again from the home page.", nil)
		return
	}
	if e := q.Get("error"); e != "" {
		msg := "The identity provider refused the sign-in: " + e + "."
		if e == "access_denied" {
			msg = "You declined the permissions this app asked for, so you are not signed in. Sign in again and accept them to continue."
		}
		render(w, http.StatusForbidden, errorPage, pageData{Session: s, Message: msg, Detail: q.Get("error_description")})
		return
	}
	res, err := a.msal.AcquireTokenByAuthCode(r.Context(), q.Get("code"), a.cfg.RedirectURI, []string{graphScope}, confidential.WithChallenge(verifier))
	if err != nil {
		a.fail(w, http.StatusBadGateway, "The sign-in could not finish: the identity provider did not accept the code.", err)
		return
	}
	c, err := a.ids.VerifyIDToken(r.Context(), res.IDToken.RawToken, nonce)
	if err != nil {
		var e *entragate.Error
		detail := ""
		if errors.As(err, &e) {
			detail = e.Description
		}
		a.cfg.Logger.Warn("ID token refused", "error", err)
		render(w, http.StatusUnauthorized, errorPage, pageData{Session: s, Message: "The ID token of this sign-in is not valid, so you are not signed in.", Detail: detail})
		return
	}
	s.AccountID, s.Claims = res.Account.HomeAccountID, profileClaims(c)
	if err := a.sessions.save(w, s); err != nil {
		a.fail(w, http.StatusInternalServerError, "The sign-in could not finish.", err)
		return
	}
	http.Redirect(w, r, "/profile", http.StatusFound)
}

// profileClaims are the verified ID-token claims the profile page shows.
func profileClaims(c *claims.Claims) map[string]string {
	m := map[string]string{
		"name": c.Name, "preferred_username": c.PreferredUsername, "email": c.Email, "oid": c.ObjectID,
		"tid": c.TenantID, "sid": c.SessionID, "login_hint": c.LoginHint, "iss": c.Issuer, "ver": c.Version,
	}
	if !c.AuthTime.IsZero() {
		m["auth_time"] = c.AuthTime.UTC().Format(time.RFC3339)
	}
	for k, v := range m {
		if v == "" {
			delete(m, k)
		}
	}
	return m
}

// profile shows the verified ID-token claims and Microsoft Graph's /me.
func (a *App) profile(w http.ResponseWriter, r *http.Request) {
	s, acct, ok := a.signedIn(w, r)
	if !ok {
		return
	}
	data := pageData{Session: s}
	token, err := a.accessToken(r.Context(), acct, []string{graphScope})
	if err == nil {
		data.Graph, err = a.getJSON(r.Context(), a.cfg.GraphURL+"/v1.0/me", token)
	}
	if err != nil {
		a.cfg.Logger.Warn("Microsoft Graph /me failed", "error", err)
		data.GraphError = "Microsoft Graph could not be asked for your profile right now."
	}
	render(w, http.StatusOK, profilePage, data)
}

// callAPI calls the protected API with the user's access token and shows
// its answer, explaining a refusal in plain words.
func (a *App) callAPI(w http.ResponseWriter, r *http.Request) {
	s, acct, ok := a.signedIn(w, r)
	if !ok {
		return
	}
	data := pageData{Session: s, API: &apiResult{URL: a.cfg.APIURL + "/secure-data"}}
	token, err := a.apiToken(r.Context(), acct)
	if err != nil {
		data.API.Explanation = "This app has no access token for the API: you have not consented to any of its permissions (" +
			strings.Join(a.cfg.APIScopes, ", ") + "). Sign out, sign in again and accept them."
		if !hasAADCode(err, 65001) {
			a.cfg.Logger.Warn("no access token for the API", "error", err)
			data.API.Explanation = "This app could not get an access token for the API."
		}
		render(w, http.StatusOK, apiPage, data)
		return
	}
	req, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, data.API.URL, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := a.cfg.HTTPClient.Do(req)
	if err != nil {
		a.cfg.Logger.Warn("calling the API failed", "error", err)
		data.API.Explanation = "The API could not be reached at " + data.API.URL + "."
		render(w, http.StatusOK, apiPage, data)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	data.API.Status = resp.StatusCode
	data.API.Body = prettyJSON(body)
	challenge := resp.Header.Get("WWW-Authenticate")
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusForbidden:
		data.API.Explanation = "The API refused this request (403 Forbidden): your access token is valid, but it does not carry the SecureData.Read permission, " +
			"because you did not grant it to this app on the consent page. Sign out, sign in again, and leave \"SecureData.Read\" ticked."
	case http.StatusUnauthorized:
		data.API.Explanation = "The API did not accept the access token (401 Unauthorized): " + challenge
	default:
		data.API.Explanation = "The API answered " + resp.Status + "."
	}
	render(w, http.StatusOK, apiPage, data)
}

// logout forgets the user here and at Entra.
func (a *App) logout(w http.ResponseWriter, r *http.Request) {
	s := a.sessions.load(r)
	if s.signedIn() {
		if acct, err := a.msal.Account(r.Context(), s.AccountID); err == nil {
			_ = a.msal.RemoveAccount(r.Context(), acct)
		}
	}
	a.sessions.clear(w)
	logout := a.cfg.AuthorityHost + "/" + a.cfg.TenantID + "/oauth2/v2.0/logout?" +
		url.Values{"post_logout_redirect_uri": {a.cfg.HomeURL}, "client_id": {a.cfg.ClientID}}.Encode()
	http.Redirect(w, r, a.cfg.BrowserURL(logout), http.StatusSeeOther)
}

// signedIn returns the session and MSAL account of a signed-in user, or
// sends the browser home.
func (a *App) signedIn(w http.ResponseWriter, r *http.Request) (*session, confidential.Account, bool) {
	s := a.sessions.load(r)
	if !s.signedIn() {
		http.Redirect(w, r, "/", http.StatusFound)
		return nil, confidential.Account{}, false
	}
	acct, err := a.msal.Account(r.Context(), s.AccountID)
	if err != nil || acct.HomeAccountID == "" {
		// The token cache lives in this process: after a restart the
		// user signs in again.
		a.sessions.clear(w)
		http.Redirect(w, r, "/", http.StatusFound)
		return nil, confidential.Account{}, false
	}
	return s, acct, true
}

// accessToken gets a token for scopes from MSAL's cache, refreshing it as
// needed.
func (a *App) accessToken(ctx context.Context, acct confidential.Account, scopes []string) (string, error) {
	res, err := a.msal.AcquireTokenSilent(ctx, scopes, confidential.WithSilentAccount(acct))
	if err != nil {
		return "", err
	}
	return res.AccessToken, nil
}

// apiToken gets an access token for the API with the permissions the user
// granted this app. Entra issues a token only for permissions granted, and
// a user may have granted some and not others (consent is given per app
// and permission, and can be given incrementally): the app asks for all of
// them, then for each alone, and calls the API with what it got. The API,
// not the app, decides what that token may do.
func (a *App) apiToken(ctx context.Context, acct confidential.Account) (string, error) {
	token, err := a.accessToken(ctx, acct, a.cfg.APIScopes)
	if err == nil || !hasAADCode(err, 65001) || len(a.cfg.APIScopes) < 2 {
		return token, err
	}
	for _, scope := range a.cfg.APIScopes {
		if token, err1 := a.accessToken(ctx, acct, []string{scope}); err1 == nil {
			return token, nil
		}
	}
	return "", err
}

// hasAADCode reports whether an MSAL error carries Entra's AADSTS code.
func hasAADCode(err error, code int) bool {
	var ce msalerrors.CallErr
	if !errors.As(err, &ce) || ce.Resp == nil || ce.Resp.Body == nil {
		return false
	}
	var body struct {
		Codes []int `json:"error_codes"`
	}
	b, _ := io.ReadAll(ce.Resp.Body)
	return json.Unmarshal(b, &body) == nil && slices.Contains(body.Codes, code)
}

func (a *App) getJSON(ctx context.Context, u, token string) (map[string]any, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := a.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, errors.New(resp.Status)
	}
	var m map[string]any
	return m, json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&m)
}

func prettyJSON(b []byte) string {
	var v any
	if json.Unmarshal(b, &v) != nil {
		return string(b)
	}
	out, _ := json.MarshalIndent(v, "", "  ")
	return string(out)
}

// fail shows an error page; the cause goes to the log, not to the page.
func (a *App) fail(w http.ResponseWriter, status int, msg string, cause error) {
	if cause != nil {
		a.cfg.Logger.Warn(msg, "error", cause)
	}
	render(w, status, errorPage, pageData{Session: &session{}, Message: msg})
}
