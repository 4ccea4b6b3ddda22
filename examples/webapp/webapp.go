package main

import (
	"bytes"
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

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/cache"
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
	// HomeURL is the app's home page, SignedOutURL where sign-out returns
	// (both registered as redirect URIs).
	RedirectURI, HomeURL, SignedOutURL string
	// APIScopes are the scopes of the protected API the app calls, and
	// APIURL the API itself.
	APIScopes []string
	APIURL    string
	// MiddleTierURL and MiddleTierScopes are a middle tier that calls other
	// APIs as the user (examples/middletier), if there is one.
	MiddleTierURL    string
	MiddleTierScopes []string
	// GraphURL is Microsoft Graph (https://graph.microsoft.com).
	GraphURL string
	// SessionKey seals the session cookie (32 bytes).
	SessionKey []byte
	// Sessions keeps signed-in sessions on the server; default: this
	// process's memory.
	Sessions SessionStore
	// TokenCache keeps MSAL's tokens outside the process
	// (tokencache.Store.MSAL, in Redis); default: this process's memory.
	TokenCache TokenCache
	// Provider loads the tenant's metadata and keys for the ID tokens. Give
	// the one the process's APIs already use, so that each document is
	// loaded once; default: one of the app's own, for AuthorityHost and
	// TenantID.
	Provider *entragate.Provider
	// HTTPClient reaches Entra, Graph and the API.
	HTTPClient *http.Client
	// InstanceDiscovery lets MSAL check the authority with Microsoft;
	// off for a fake tenant, which Microsoft does not know.
	InstanceDiscovery bool
	// BrowserURL, when set, turns an Entra URL into the one the user's
	// browser should open (offline: the fake tenant's plain-http port).
	BrowserURL func(string) string
	Logger     *slog.Logger

	closers []func() error // what configure opened, closed by App.Close
}

// TokenCache is MSAL's external cache, which can also forget an account:
// MSAL for Go's RemoveAccount does not reach the account's partition of an
// external cache (see middleware/tokencache).
type TokenCache interface {
	cache.ExportReplace
	DeleteAccount(ctx context.Context, homeAccountID string) error
	// Stored reports whether the cache holds the account: when MSAL finds
	// none, gone (false, nil) or unknown now (an error).
	Stored(ctx context.Context, homeAccountID string) (bool, error)
}

// App is the tutorial's Flask app in Go: sign-in with MSAL, the ID token
// verified by entragate, Graph /me, and the protected API.
type App struct {
	cfg      Config
	msal     *msalClients
	ids      *entragate.IDTokenVerifier // verifies the app's ID tokens
	own      *entragate.Provider        // the Provider the app started, if it did
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
	// cp1: the app answers claims challenges (step-up, revoked sessions),
	// so Entra and the APIs may send them.
	opts := []confidential.Option{confidential.WithHTTPClient(cfg.HTTPClient), confidential.WithInstanceDiscovery(cfg.InstanceDiscovery),
		confidential.WithClientCapabilities([]string{"cp1"})}
	if cfg.TokenCache != nil {
		opts = append(opts, confidential.WithCache(cfg.TokenCache))
	}
	clients, err := newMSALClients(func() (confidential.Client, error) {
		return confidential.New(cfg.AuthorityHost+"/"+cfg.TenantID, cfg.ClientID, cred, opts...)
	}, cfg.TokenCache != nil)
	if err != nil {
		return nil, fmt.Errorf("MSAL: %w", err)
	}
	a := &App{cfg: cfg, msal: clients}
	provider := cfg.Provider
	if provider == nil {
		provider, err = entragate.NewProvider(ctx, entragate.ProviderConfig{
			Authorities: []entragate.Authority{entragate.EntraTenant(cfg.TenantID).WithHost(cfg.AuthorityHost)},
			HTTPClient:  cfg.HTTPClient, Logger: cfg.Logger,
		})
		if err != nil {
			return nil, err
		}
		a.own = provider
	}
	if a.ids, err = provider.NewIDTokenVerifier(entragate.IDTokenConfig{ClientID: cfg.ClientID}); err != nil {
		a.Close()
		return nil, err
	}
	if cfg.Sessions == nil {
		cfg.Sessions = newMemorySessions()
	}
	if a.sessions, err = newSessions(cfg.SessionKey, cfg.Sessions); err != nil {
		a.Close()
		return nil, err
	}
	return a, nil
}

// Close stops the Provider the app started, if it started one, and what
// its configuration opened (the Redis client).
func (a *App) Close() {
	if a.own != nil {
		a.own.Close()
	}
	for _, c := range a.cfg.closers {
		_ = c()
	}
}

// Handler serves the app's pages.
func (a *App) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", a.home)
	mux.HandleFunc("GET /login", a.login)
	mux.HandleFunc("GET /get_token", a.callback)
	mux.HandleFunc("GET /profile", a.profile)
	mux.HandleFunc("GET /call-api", a.callAPI)
	mux.HandleFunc("GET /confidential", a.confidential)
	mux.HandleFunc("GET /chain", a.chain)
	mux.HandleFunc("POST /step-up", a.continueStepUp)
	mux.HandleFunc("POST /logout", a.logout)
	mux.HandleFunc("GET /signed-out", a.signedOut)
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
	if s.unreadable {
		a.storeUnavailable(w, s)
		return
	}
	if s.signedIn() {
		// The tokens live in MSAL's cache: when it no longer has the
		// session's account, this sign-in is gone too.
		if _, ok := a.account(r.Context(), s.AccountID); !ok {
			if a.cacheUnavailable(w, r, s) {
				return
			}
			_ = a.sessions.end(r.Context(), w, s)
		}
	}
	render(w, http.StatusOK, homePage, pageData{Session: s})
}

// storeUnavailable answers a request whose session the store cannot say
// anything about now: 503, the session kept for when it can.
func (a *App) storeUnavailable(w http.ResponseWriter, s *session) {
	w.Header().Set("Retry-After", "5")
	render(w, http.StatusServiceUnavailable, errorPage, pageData{Session: s,
		Message: "The app cannot reach its session store right now, so it cannot tell whether you are signed in. Try again in a moment."})
}

// cacheUnavailable reports, having answered 503, whether MSAL found no
// account only because the token cache cannot be read now: then the
// session stays, for when it can.
func (a *App) cacheUnavailable(w http.ResponseWriter, r *http.Request, s *session) bool {
	if a.cfg.TokenCache == nil {
		return false
	}
	if stored, err := a.cfg.TokenCache.Stored(r.Context(), s.AccountID); err == nil && !stored {
		return false // gone: the session ends
	}
	// The cache cannot say, or holds the account MSAL did not find (a
	// read that failed a moment ago): try again later.
	s.unreadable = true
	a.storeUnavailable(w, s)
	return true
}

// login sends the browser to Entra's sign-in page.
func (a *App) login(w http.ResponseWriter, r *http.Request) {
	a.startSignIn(w, r, a.sessions.load(r), signInFor{})
}

// signInFor is why a sign-in starts: none for a plain sign-in; for a page
// whose API asked for claims (a step-up), or for consent.
type signInFor struct {
	claims, page string
	consent      bool
}

// startSignIn sends the browser to Entra's authorize endpoint: a sign-in,
// or with claims a step-up (the claims of an API's claims challenge,
// which Entra satisfies by asking the user for more), for the signed-in
// user. MSAL builds the authorization URL; it has no option for state,
// nonce or PKCE in a confidential client's URL, so the app adds them,
// keeping their secrets in the sealed session: state binds the answer to
// this browser, nonce the ID token to this sign-in, the PKCE verifier the
// code to this app.
func (a *App) startSignIn(w http.ResponseWriter, r *http.Request, s *session, why signInFor) {
	// openid for the ID token, offline_access for the refresh token MSAL
	// needs to get the API's token later; MSAL for Go adds them to token
	// requests but not to this URL. The middle tier's scope too: consent
	// to it is consent to what it calls as the user (Entra's combined
	// consent, the app being its known client).
	scopes := append(append([]string{"openid", "profile", "offline_access", graphScope}, a.cfg.APIScopes...), a.cfg.MiddleTierScopes...)
	opts := []confidential.AuthCodeURLOption{}
	if why.page != "" {
		if why.claims != "" && why.claims != "{}" {
			opts = append(opts, confidential.WithClaims(why.claims))
		}
		if hint := s.Claims["login_hint"]; hint != "" {
			opts = append(opts, confidential.WithLoginHint(hint))
		}
	}
	authURL, err := a.msal.shared.AuthCodeURL(r.Context(), a.cfg.ClientID, a.cfg.RedirectURI, scopes, opts...)
	if err != nil {
		a.fail(w, http.StatusBadGateway, "The sign-in could not start: the identity provider's metadata could not be read.", err)
		return
	}
	s.State, s.Nonce, s.Verifier = oauth2.GenerateVerifier(), oauth2.GenerateVerifier(), oauth2.GenerateVerifier()
	s.StepUpClaims, s.StepUpPage, s.SteppedUp = why.claims, why.page, false
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
	switch {
	case why.consent:
		q.Set("prompt", "consent")
	case why.page == "":
		q.Set("prompt", "select_account")
	}
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
	state, nonce, verifier, stepUp, stepUpPage := s.State, s.Nonce, s.Verifier, s.StepUpClaims, s.StepUpPage
	s.State, s.Nonce, s.Verifier, s.StepUpClaims, s.StepUpPage = "", "", "", "", "" // one use, whatever happens
	target, steppingUp := a.targets()[stepUpPage]
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
		switch {
		case steppingUp && s.signedIn():
			// The user is still signed in; only the stronger token is missing.
			msg = "You did not complete the extra sign-in or consent this page needs, so it stays closed. You are still signed in."
		case e == "access_denied":
			msg = "You declined the permissions this app asked for, so you are not signed in. Sign in again and accept them to continue."
		}
		render(w, http.StatusForbidden, errorPage, pageData{Session: s, Message: msg, Detail: q.Get("error_description"), SignIn: !steppingUp})
		return
	}
	res, ok := a.redeem(w, r, s, verifier, stepUp, target, steppingUp)
	if !ok {
		return
	}
	c, err := a.ids.Verify(r.Context(), res.IDToken.RawToken, nonce)
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
	s.SteppedUp = steppingUp
	if err := a.sessions.signIn(r.Context(), w, s, res.Account.HomeAccountID, profileClaims(c)); err != nil {
		a.fail(w, http.StatusInternalServerError, "The sign-in could not finish.", err)
		return
	}
	if steppingUp {
		http.Redirect(w, r, target.page, http.StatusFound)
		return
	}
	http.Redirect(w, r, "/profile", http.StatusFound)
}

// redeem exchanges the callback's code for tokens; a failure is explained
// on the page. A sign-in redeems the code for Graph; a step-up for the
// API, with the claims it asked for, so that MSAL's cache holds the
// stronger token.
func (a *App) redeem(w http.ResponseWriter, r *http.Request, s *session, verifier, stepUp string, target target, steppingUp bool) (confidential.AuthResult, bool) {
	redeemScopes, redeemOpts := []string{graphScope}, []confidential.AcquireByAuthCodeOption{confidential.WithChallenge(verifier)}
	if steppingUp {
		redeemScopes = target.scopes
		if stepUp != "" && stepUp != "{}" {
			redeemOpts = append(redeemOpts, confidential.WithClaims(stepUp))
		}
	}
	client, err := a.msal.forSignIn()
	var res confidential.AuthResult
	if err == nil {
		res, err = client.AcquireTokenByAuthCode(r.Context(), r.URL.Query().Get("code"), a.cfg.RedirectURI, redeemScopes, redeemOpts...)
	}
	if err == nil {
		a.msal.adopt(res.Account.HomeAccountID, client)
		return res, true
	}
	a.cfg.Logger.Warn("redeeming the authorization code failed", "error", err)
	msg, detail := "The sign-in could not finish: the identity provider did not accept the code.", ""
	if ae, ok := aadErrorOf(err); ok {
		detail = ae.summary()
		if ae.has(aadConsentMissing) {
			msg = "You did not grant this app the permission to read your profile (" + graphScope + "), which it needs to sign you in, " +
				"so you are not signed in. Sign in again and leave \"" + graphScope + "\" ticked on the consent page."
		}
	}
	render(w, http.StatusForbidden, errorPage, pageData{Session: s, Message: msg, Detail: detail, SignIn: true})
	return res, false
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

// target is an API call a page makes with the user's token: its URL and
// the scopes of its token.
type target struct {
	page, heading string // the app's page
	url           string // the API's URL
	scopes        []string
	// consent: an interactive retry asks the user to consent again (what
	// a middle tier missing the user's consent needs).
	consent bool
}

func (a *App) targets() map[string]target {
	return map[string]target{
		"/call-api":     {page: "/call-api", heading: "The protected API", url: a.cfg.APIURL + "/secure-data", scopes: a.cfg.APIScopes},
		"/confidential": {page: "/confidential", heading: "Confidential data (step-up)", url: a.cfg.APIURL + "/secure-data/confidential", scopes: a.cfg.APIScopes},
		"/chain": {page: "/chain", heading: "Calling other APIs (on behalf of you)", url: a.cfg.MiddleTierURL + "/chain",
			scopes: a.cfg.MiddleTierScopes, consent: true},
	}
}

// callAPI calls the protected API with the user's access token and shows
// its answer, explaining a refusal in plain words.
func (a *App) callAPI(w http.ResponseWriter, r *http.Request) {
	s, acct, ok := a.signedIn(w, r)
	if !ok {
		return
	}
	res, _ := a.callWithUserToken(r.Context(), acct, a.targets()["/call-api"])
	render(w, http.StatusOK, apiPage, pageData{Session: s, API: res})
}

// confidential calls the API's step-up route; chain calls the middle tier,
// which calls other APIs as the user.
func (a *App) confidential(w http.ResponseWriter, r *http.Request) {
	a.challenged(w, r, a.targets()["/confidential"])
}

func (a *App) chain(w http.ResponseWriter, r *http.Request) {
	if a.cfg.MiddleTierURL == "" {
		s, _, ok := a.signedIn(w, r)
		if ok {
			render(w, http.StatusOK, apiPage, pageData{Session: s, API: &apiResult{Heading: "Calling other APIs (on behalf of you)",
				Explanation: "No middle tier is configured (MIDDLE_TIER_URL): run examples/middletier and start this app with the environment it prints."}})
		}
		return
	}
	a.challenged(w, r, a.targets()["/chain"])
}

// challenged calls t's API and answers its claims challenge: the app asks
// MSAL for a token with those claims silently first (enough for a revoked
// session, and for a context the user already satisfied), else sends the
// user through sign-in with them (Entra's step-up, or consent for a middle
// tier), then calls once more. After a sign-in for it the app never asks
// again: a second challenge is shown, not chased.
func (a *App) challenged(w http.ResponseWriter, r *http.Request, t target) {
	s, acct, ok := a.signedIn(w, r)
	if !ok {
		return
	}
	steppedUp := s.SteppedUp
	if steppedUp {
		s.SteppedUp = false
		if err := a.sessions.save(w, s); err != nil {
			a.fail(w, http.StatusInternalServerError, "The session could not be saved.", err)
			return
		}
	}
	res, challenge := a.callWithUserToken(r.Context(), acct, t)
	if challenge != nil && challenge.Claims != "{}" {
		client, err := a.msal.forAccount(acct.HomeAccountID)
		var silent confidential.AuthResult
		if err == nil {
			silent, err = client.AcquireTokenSilent(r.Context(), t.scopes, confidential.WithSilentAccount(acct), confidential.WithClaims(challenge.Claims))
		}
		if err == nil {
			res, challenge = a.callWithToken(r.Context(), t, silent.AccessToken)
		}
	}
	switch {
	case challenge != nil && steppedUp:
		res.Explanation = "The API still asks for more (a claims challenge) after you signed in again for it. " +
			"The app does not ask you again, so that it never sends you round in circles; the API's answer is below."
	case challenge != nil:
		// Asked, not done: the user sends the sign-in off with a button
		// (a same-site POST), so that no link from elsewhere can.
		s.PendingClaims, s.PendingPage = challenge.Claims, t.page
		if err := a.sessions.save(w, s); err != nil {
			a.fail(w, http.StatusInternalServerError, "The session could not be saved.", err)
			return
		}
		res.StepUp = true
		res.Consent = t.consent && asksConsent(challenge.Claims)
	case steppedUp && res.Status == http.StatusOK:
		res.Explanation = "You signed in again for this; the API accepted your new token."
	}
	render(w, http.StatusOK, apiPage, pageData{Session: s, API: res})
}

// continueStepUp starts the sign-in a page's claims challenge asked for,
// when the user confirms it (the page's form; cross-origin POSTs are
// refused before they get here).
func (a *App) continueStepUp(w http.ResponseWriter, r *http.Request) {
	s, _, ok := a.signedIn(w, r)
	if !ok {
		return
	}
	t, known := a.targets()[s.PendingPage]
	if !known {
		http.Redirect(w, r, "/profile", http.StatusSeeOther)
		return
	}
	claims := s.PendingClaims
	s.PendingClaims, s.PendingPage = "", ""
	a.startSignIn(w, r, s, signInFor{claims: claims, page: t.page, consent: t.consent && asksConsent(claims)})
}

// asksConsent reports whether a middle tier's claims challenge names no
// claims: it asks for the user's consent (consent_required), not for a
// step-up, whose claims it would name.
func asksConsent(claims string) bool { return claims == "" || claims == "{}" }

// callWithUserToken calls t's API with the user's access token.
func (a *App) callWithUserToken(ctx context.Context, acct confidential.Account, t target) (*apiResult, *claims.ClaimsChallenge) {
	token, err := a.apiToken(ctx, acct, t.scopes)
	if err != nil {
		a.cfg.Logger.Warn("no access token for the API", "error", err)
		res := &apiResult{Heading: t.heading, URL: t.url, Explanation: "This app could not get an access token for the API."}
		if ae, ok := aadErrorOf(err); ok && ae.has(aadConsentMissing) {
			res.Explanation = "This app has no access token for the API: you have not consented to any of its permissions (" +
				strings.Join(t.scopes, ", ") + "). Sign out, sign in again and accept them."
		}
		return res, nil
	}
	return a.callWithToken(ctx, t, token)
}

// callWithToken calls t's API with token and explains its answer; a
// claims challenge is returned for the caller to act on.
func (a *App) callWithToken(ctx context.Context, t target, token string) (*apiResult, *claims.ClaimsChallenge) {
	res := &apiResult{Heading: t.heading, URL: t.url}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, res.URL, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := a.cfg.HTTPClient.Do(req)
	if err != nil {
		a.cfg.Logger.Warn("calling the API failed", "error", err)
		res.Explanation = "The API could not be reached at " + res.URL + "."
		return res, nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	res.Status = resp.StatusCode
	res.Body = prettyJSON(body)
	challenges := resp.Header.Values("WWW-Authenticate")
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusForbidden:
		res.Explanation = "The API refused this request (403 Forbidden): your access token is valid, but it does not carry the SecureData.Read permission, " +
			"because you did not grant it to this app on the consent page. Sign out, sign in again, and leave \"SecureData.Read\" ticked."
	case http.StatusUnauthorized:
		if ch, err := claims.ParseClaimsChallenge(challenges...); err == nil {
			res.Explanation = "The API asks for a token with more claims (401 insufficient_claims): " + ch.Claims
			if asksConsent(ch.Claims) {
				res.Explanation = "The API asks you to sign in again (401 insufficient_claims, naming no claims): it needs your consent to act as you."
			}
			return res, &ch
		}
		res.Explanation = "The API did not accept the access token (401 Unauthorized): " + strings.Join(challenges, ", ")
	default:
		res.Explanation = "The API answered " + resp.Status + "."
	}
	return res, nil
}

// logout ends the session on the server and in the browser, forgets the
// user's tokens, and signs the user out at Entra, which sends the browser
// back to the signed-out page. The account's sign-out is recorded first,
// where every instance reads it: when the session store cannot take it,
// nothing is undone and the user is asked to try again, so that no
// sign-out is lost and comes back with the store.
func (a *App) logout(w http.ResponseWriter, r *http.Request) {
	s := a.sessions.load(r)
	accountID := s.AccountID
	if err := a.sessions.signOut(r.Context(), w, s); errors.Is(err, errSignOutNotRecorded) {
		a.cfg.Logger.Warn("signing out failed: the session store cannot be reached", "error", err)
		render(w, http.StatusServiceUnavailable, errorPage, pageData{Session: s, Retry: true,
			Message: "You are not signed out yet: the app could not record your sign-out for all its servers. Try again in a moment."})
		return
	} else if err != nil {
		// The sign-out is recorded; a session the store could not delete
		// opens nothing now, and expires with its lifetime.
		a.cfg.Logger.Warn("deleting the session failed", "error", err)
	}
	if accountID != "" {
		if acct, ok := a.account(r.Context(), accountID); ok {
			if client, err := a.msal.forAccount(accountID); err == nil {
				_ = client.RemoveAccount(r.Context(), acct)
			}
		}
		if a.cfg.TokenCache != nil {
			_ = a.cfg.TokenCache.DeleteAccount(r.Context(), accountID)
		}
	}
	logout := a.cfg.AuthorityHost + "/" + a.cfg.TenantID + "/oauth2/v2.0/logout?" +
		url.Values{"post_logout_redirect_uri": {a.cfg.SignedOutURL}, "client_id": {a.cfg.ClientID}}.Encode()
	http.Redirect(w, r, a.cfg.BrowserURL(logout), http.StatusSeeOther)
}

// signedOut confirms the sign-out.
func (a *App) signedOut(w http.ResponseWriter, r *http.Request) {
	render(w, http.StatusOK, signedOutPage, pageData{Session: a.sessions.load(r)})
}

// signedIn returns the session and MSAL account of a signed-in user, or
// sends the browser home.
func (a *App) signedIn(w http.ResponseWriter, r *http.Request) (*session, confidential.Account, bool) {
	s := a.sessions.load(r)
	if s.unreadable {
		a.storeUnavailable(w, s)
		return nil, confidential.Account{}, false
	}
	if !s.signedIn() {
		http.Redirect(w, r, "/", http.StatusFound)
		return nil, confidential.Account{}, false
	}
	acct, ok := a.account(r.Context(), s.AccountID)
	if !ok && a.cacheUnavailable(w, r, s) {
		return nil, confidential.Account{}, false
	}
	if !ok {
		a.cfg.Logger.Info("the session's account is not in MSAL's cache: this browser signs in again")
		// MSAL's cache no longer has the account (a restart, with the
		// cache in memory): this browser signs in again. Its other
		// sessions are not signed out: the account did not sign out.
		_ = a.sessions.end(r.Context(), w, s)
		http.Redirect(w, r, "/", http.StatusFound)
		return nil, confidential.Account{}, false
	}
	return s, acct, true
}

// account is MSAL's account of the session, if its cache has it.
func (a *App) account(ctx context.Context, homeAccountID string) (confidential.Account, bool) {
	client, err := a.msal.forAccount(homeAccountID)
	if err != nil {
		return confidential.Account{}, false
	}
	acct, err := client.Account(ctx, homeAccountID)
	return acct, err == nil && acct.HomeAccountID != ""
}

// accessToken gets a token for scopes from MSAL's cache, refreshing it as
// needed.
func (a *App) accessToken(ctx context.Context, acct confidential.Account, scopes []string) (string, error) {
	client, err := a.msal.forAccount(acct.HomeAccountID)
	if err != nil {
		return "", err
	}
	res, err := client.AcquireTokenSilent(ctx, scopes, confidential.WithSilentAccount(acct))
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
func (a *App) apiToken(ctx context.Context, acct confidential.Account, scopes []string) (string, error) {
	token, err := a.accessToken(ctx, acct, scopes)
	if ae, ok := aadErrorOf(err); !ok || !ae.has(aadConsentMissing) || len(scopes) < 2 {
		return token, err
	}
	for _, scope := range scopes {
		if token, err1 := a.accessToken(ctx, acct, []string{scope}); err1 == nil {
			return token, nil
		}
	}
	return "", err
}

// aadConsentMissing is AADSTS65001: the user or an administrator has not
// consented to a permission the request asks for.
const aadConsentMissing = 65001

// aadError is Entra's answer to a refused token request, as MSAL for Go
// hands it over: the HTTP response of its CallErr.
type aadError struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
	Codes       []int  `json:"error_codes"`
	Claims      string `json:"claims"`
}

func (e aadError) has(code int) bool { return slices.Contains(e.Codes, code) }

// summary is the error code and the first line of its description (the
// rest is a trace and correlation ID), for the page.
func (e aadError) summary() string {
	first, _, _ := strings.Cut(e.Description, "\n")
	return strings.TrimSpace(e.Error + ": " + strings.TrimSpace(first))
}

// aadErrorOf reads Entra's error out of an MSAL error. The response body
// is read once and put back, so that any later reader of the same error
// reads it too.
func aadErrorOf(err error) (aadError, bool) {
	var ce msalerrors.CallErr
	if err == nil || !errors.As(err, &ce) || ce.Resp == nil || ce.Resp.Body == nil {
		return aadError{}, false
	}
	b, _ := io.ReadAll(io.LimitReader(ce.Resp.Body, 64<<10))
	ce.Resp.Body.Close()
	ce.Resp.Body = io.NopCloser(bytes.NewReader(b))
	var e aadError
	return e, json.Unmarshal(b, &e) == nil && (e.Error != "" || len(e.Codes) > 0)
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
