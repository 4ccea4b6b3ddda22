package entratest

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// ssoCookie names the tenant's sign-in session cookie on the fake.
func ssoCookie(t *Tenant) string { return "entratest_sso_" + t.ID[:8] }

// authorize answers /{tenant}/oauth2/v2.0/authorize: GET starts a sign-in,
// POST is the sign-in page's or the consent page's answer.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, t *Tenant) {
	if r.Method == http.MethodPost {
		s.authorizeAnswer(w, r, t)
		return
	}
	req, ok := s.authorizeRequest(w, r, t)
	if !ok {
		return
	}
	session := s.session(r, t)
	switch {
	case req.prompt == "none" && session == nil:
		redirectError(w, r, req, "login_required", "AADSTS50058: A silent sign-in request was sent but no user is signed in.")
	case session == nil || req.prompt == "login" || req.prompt == "select_account":
		s.savePending(req)
		page(w, http.StatusOK, signInPage, signInData{Tenant: t, Request: req.id, App: req.app.Name, Users: t.Users(), Hint: req.loginHint, Prompt: req.prompt})
	default:
		s.afterSignIn(w, r, req, session.user, session.sid, s.satisfied(session))
	}
}

// authorizeRequest reads and checks an authorization request. Problems
// with the client or the redirect URI are shown on an error page: Entra
// never redirects to an address it cannot trust.
func (s *Server) authorizeRequest(w http.ResponseWriter, r *http.Request, t *Tenant) (*authRequest, bool) {
	q := r.URL.Query()
	app := s.oauth.app(t, q.Get("client_id"))
	if app == nil {
		page(w, http.StatusBadRequest, errorPage, errorData{Code: "unauthorized_client",
			Message: "AADSTS700016: Application with identifier '" + q.Get("client_id") + "' was not found in the directory '" + t.Domain + "'."})
		return nil, false
	}
	redirect := q.Get("redirect_uri")
	if !slices.Contains(app.RedirectURIs, redirect) {
		page(w, http.StatusBadRequest, errorPage, errorData{Code: "invalid_request",
			Message: "AADSTS50011: The redirect URI '" + redirect + "' specified in the request does not match the redirect URIs configured for the application '" + app.ClientID + "'."})
		return nil, false
	}
	req := &authRequest{
		id: opaque(24), tenant: t, app: app, redirectURI: redirect, state: q.Get("state"), nonce: q.Get("nonce"),
		loginHint: q.Get("login_hint"), challenge: q.Get("code_challenge"), method: q.Get("code_challenge_method"),
		prompt: q.Get("prompt"), responseMode: q.Get("response_mode"), created: time.Now(),
	}
	if req.challenge != "" && req.method == "" {
		req.method = "plain" // RFC 7636 §4.3
	}
	fail := func(code, description string) (*authRequest, bool) {
		redirectError(w, r, req, code, description)
		return nil, false
	}
	switch {
	case q.Get("response_type") != "code":
		return fail("unsupported_response_type", "AADSTS700054: response_type '"+q.Get("response_type")+"' is not enabled for the application; use code.")
	case !slices.Contains([]string{"", "query", "fragment", "form_post"}, req.responseMode):
		req.responseMode = ""
		return fail("invalid_request", "AADSTS900144: Invalid response_mode '"+q.Get("response_mode")+"'.")
	case !slices.Contains([]string{"", "login", "consent", "select_account", "none"}, req.prompt):
		return fail("invalid_request", "AADSTS90023: Invalid prompt value '"+req.prompt+"'.")
	case req.challenge != "" && req.method != "S256" && req.method != "plain":
		return fail("invalid_request", "AADSTS501491: Invalid code_challenge_method '"+req.method+"': use S256.")
	case req.challenge == "" && req.method != "":
		return fail("invalid_request", "AADSTS501481: The code_challenge is missing.")
	case req.challenge != "" && !pkceSyntax(req.challenge):
		return fail("invalid_request", "AADSTS501491: The code_challenge is malformed: 43 to 128 characters of A-Z a-z 0-9 - . _ ~.")
	case req.challenge == "" && app.Public:
		return fail("invalid_request", "AADSTS9002325: Proof Key for Code Exchange is required for public clients.")
	case q.Get("scope") == "":
		return fail("invalid_request", "AADSTS900144: The request body must contain the following parameter: 'scope'.")
	}
	scopes, problem := t.parseScopes(q.Get("scope"))
	if problem != "" {
		return fail("invalid_scope", problem)
	}
	req.scopes = t.expandDefault(app, scopes)
	if req.claims, problem = parseClaimsRequest(q.Get("claims")); problem != "" {
		return fail("invalid_request", problem)
	}
	return req, true
}

// authorizeAnswer handles the sign-in page (user=) and the consent page
// (consent=accept|cancel, scope=... for the permissions granted).
func (s *Server) authorizeAnswer(w http.ResponseWriter, r *http.Request, t *Tenant) {
	if err := r.ParseForm(); err != nil {
		page(w, http.StatusBadRequest, errorPage, errorData{Code: "invalid_request", Message: "AADSTS900144: The request is malformed."})
		return
	}
	req := s.takePending(r.PostForm.Get("request"))
	if req == nil || req.tenant != t {
		page(w, http.StatusBadRequest, errorPage, errorData{Code: "invalid_request", Message: "AADSTS90015: The sign-in request expired or is not known. Start again from the application."})
		return
	}
	switch {
	case r.PostForm.Has("user"):
		u, ok := t.user(r.PostForm.Get("user"))
		if !ok {
			page(w, http.StatusBadRequest, errorPage, errorData{Code: "invalid_request", Message: "AADSTS50034: The user account does not exist in the directory."})
			return
		}
		sid := NewGUID()
		s.startSession(w, t, u, sid)
		s.afterSignIn(w, r, req, u, sid, nil)
	case r.PostForm.Get("stepup") == "verify":
		g := s.session(r, t)
		if g == nil {
			page(w, http.StatusBadRequest, errorPage, errorData{Code: "invalid_request", Message: "AADSTS50058: No user is signed in."})
			return
		}
		s.afterSignIn(w, r, req, g.user, g.sid, s.stepUp(g, req.claims.contexts))
	case r.PostForm.Get("stepup") == "cancel":
		redirectError(w, r, req, "access_denied", "AADSTS50074: Strong authentication is required and the user did not complete it.")
	case r.PostForm.Get("consent") == "accept":
		g := s.session(r, t)
		if g == nil {
			page(w, http.StatusBadRequest, errorPage, errorData{Code: "invalid_request", Message: "AADSTS50058: No user is signed in."})
			return
		}
		// What the page showed, each granted to the app it was asked for.
		byApp := map[*App][]scope{}
		for _, sc := range req.shown {
			if !slices.Contains(r.PostForm["scope"], sc.formKey()) {
				continue
			}
			app := req.app
			if sc.forApp != "" {
				app = s.oauth.app(t, sc.forApp)
			}
			byApp[app] = append(byApp[app], sc)
		}
		for app, accepted := range byApp {
			s.oauth.consent(t, g.user, app, accepted)
		}
		s.issueCode(w, r, req, codeGrant(req, g.user, g.sid, g.authAt, s.satisfied(g)))
	case r.PostForm.Get("consent") == "cancel":
		redirectError(w, r, req, "access_denied", "AADSTS65004: User declined to consent to access the app.")
	default:
		page(w, http.StatusBadRequest, errorPage, errorData{Code: "invalid_request", Message: "AADSTS900144: The request is malformed."})
	}
}

// afterSignIn asks for a step-up when the request's claims name an
// authentication context the browser's session has not satisfied, then
// for consent when the app wants permissions the user has not granted it
// (or prompt=consent), else issues the code. satisfied are the session's
// contexts.
func (s *Server) afterSignIn(w http.ResponseWriter, r *http.Request, req *authRequest, u User, sid string, satisfied []string) {
	if req.claims.missing(satisfied) {
		if req.prompt == "none" {
			redirectError(w, r, req, "interaction_required", "AADSTS50076: Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access this resource.")
			return
		}
		s.savePending(req)
		page(w, http.StatusOK, stepUpPage, stepUpData{Tenant: req.tenant, Request: req.id, App: req.app.Name, User: u, Contexts: req.claims.contexts})
		return
	}
	needed := s.oauth.needsConsent(req, u, req.prompt == "consent")
	if len(needed) > 0 {
		if req.prompt == "none" {
			redirectError(w, r, req, "consent_required", "AADSTS65001: The user or administrator has not consented to use the application.")
			return
		}
		req.shown = needed
		s.savePending(req)
		var perms []permission
		for _, sc := range needed {
			perms = append(perms, permission{Key: sc.formKey(), Name: sc.full(req.tenant), Label: s.describeScope(req.tenant, sc)})
		}
		page(w, http.StatusOK, consentPage, consentData{Tenant: req.tenant, Request: req.id, App: req.app.Name, User: u, Permissions: perms})
		return
	}
	s.issueCode(w, r, req, codeGrant(req, u, sid, time.Now(), satisfied))
}

// codeGrant is what an authorization code for req gives: its tokens carry
// the authentication contexts it asked for that the session satisfied.
func codeGrant(req *authRequest, u User, sid string, authAt time.Time, satisfied []string) grant {
	var contexts []string
	for _, id := range req.claims.contexts {
		if slices.Contains(satisfied, id) {
			contexts = append(contexts, id)
		}
	}
	return grant{tenant: req.tenant, user: u, app: req.app, sid: sid, authAt: authAt, contexts: contexts}
}

// satisfied are the authentication contexts a session satisfied.
func (s *Server) satisfied(session *grant) []string {
	s.oauth.mu.Lock()
	defer s.oauth.mu.Unlock()
	return slices.Clone(session.contexts)
}

// stepUp records that the session's user satisfied contexts (the step-up
// page's verification), and returns all the session satisfied.
func (s *Server) stepUp(session *grant, contexts []string) []string {
	s.oauth.mu.Lock()
	defer s.oauth.mu.Unlock()
	session.contexts = appendNew(session.contexts, contexts...)
	return slices.Clone(session.contexts)
}

func (s *Server) issueCode(w http.ResponseWriter, r *http.Request, req *authRequest, g grant) {
	g.app = req.app
	code := "1." + opaque(96)
	expires := s.oauth.clock().Add(codeLifetime)
	s.oauth.mu.Lock()
	s.oauth.codes[code] = &authCode{grant: g, req: req, expires: expires}
	s.oauth.mu.Unlock()
	q := url.Values{"code": {code}, "session_state": {g.sid}}
	if req.state != "" {
		q.Set("state", req.state)
	}
	respond(w, r, req, q)
}

func (s *Server) describeScope(t *Tenant, sc scope) string {
	label := sc.name + " (the API)"
	switch {
	case sc.resource == "graph" && strings.EqualFold(sc.name, "User.Read"):
		label = "Sign you in and read your profile (Microsoft Graph)"
	case sc.resource == "graph":
		label = sc.name + " (Microsoft Graph)"
	case strings.HasPrefix(sc.resource, "app:"):
		label = sc.name + " (" + s.oauth.app(t, strings.TrimPrefix(sc.resource, "app:")).Name + ")"
	}
	if sc.forApp != "" {
		label += ", for " + s.oauth.app(t, sc.forApp).Name + " to use as you"
	}
	return label
}

func (s *Server) savePending(req *authRequest) {
	s.oauth.mu.Lock()
	defer s.oauth.mu.Unlock()
	for id, p := range s.oauth.pending {
		if time.Since(p.created) > pendingLifetime {
			delete(s.oauth.pending, id)
		}
	}
	s.oauth.pending[req.id] = req
}

func (s *Server) takePending(id string) *authRequest {
	s.oauth.mu.Lock()
	defer s.oauth.mu.Unlock()
	req := s.oauth.pending[id]
	delete(s.oauth.pending, id)
	if req == nil || time.Since(req.created) > pendingLifetime {
		return nil
	}
	return req
}

// startSession signs u in to the tenant for this browser.
func (s *Server) startSession(w http.ResponseWriter, t *Tenant, u User, sid string) {
	id := opaque(32)
	s.oauth.mu.Lock()
	s.oauth.sessions[id] = &grant{tenant: t, user: u, sid: sid, authAt: time.Now()}
	s.oauth.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: ssoCookie(t), Value: id, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
}

// session is who is signed in to the tenant in this browser, or nil.
func (s *Server) session(r *http.Request, t *Tenant) *grant {
	c, err := r.Cookie(ssoCookie(t))
	if err != nil {
		return nil
	}
	s.oauth.mu.Lock()
	defer s.oauth.mu.Unlock()
	return s.oauth.sessions[c.Value]
}

// logout answers /{tenant}/oauth2/v2.0/logout: it ends the browser's
// session, then returns to post_logout_redirect_uri when an app registered
// it as a redirect URI.
func (s *Server) logout(w http.ResponseWriter, r *http.Request, t *Tenant) {
	if c, err := r.Cookie(ssoCookie(t)); err == nil {
		s.oauth.mu.Lock()
		delete(s.oauth.sessions, c.Value)
		s.oauth.mu.Unlock()
	}
	http.SetCookie(w, &http.Cookie{Name: ssoCookie(t), Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	q := r.URL.Query()
	next := q.Get("post_logout_redirect_uri")
	if next != "" && s.registeredRedirect(t, q.Get("client_id"), next) {
		http.Redirect(w, r, next, http.StatusFound)
		return
	}
	page(w, http.StatusOK, signedOutPage, signInData{Tenant: t})
}

// registeredRedirect reports whether u is exactly one of the redirect URIs
// of the app named by clientID (of any of the tenant's apps without one).
func (s *Server) registeredRedirect(t *Tenant, clientID, u string) bool {
	s.oauth.mu.Lock()
	defer s.oauth.mu.Unlock()
	for key, app := range s.oauth.apps {
		if strings.HasPrefix(key, t.ID+"|") && (clientID == "" || strings.EqualFold(clientID, app.ClientID)) && slices.Contains(app.RedirectURIs, u) {
			return true
		}
	}
	return false
}

// The pages. Plain HTML with stable element IDs, for people and for
// browser tests.
