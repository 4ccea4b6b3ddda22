package entratest

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// token answers /{tenant}/oauth2/v2.0/token.
func (s *Server) token(w http.ResponseWriter, r *http.Request, t *Tenant) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		writeJSON(w, http.StatusMethodNotAllowed, aadError("invalid_request", "AADSTS900561: The endpoint only accepts POST requests."))
		return
	}
	if err := r.ParseForm(); err != nil {
		writeJSON(w, http.StatusBadRequest, aadError("invalid_request", "AADSTS900144: The request body is malformed."))
		return
	}
	app, problem := s.authenticateClient(r, t)
	if problem != nil {
		status := http.StatusUnauthorized
		if problem["error"] != "invalid_client" {
			status = http.StatusBadRequest
		}
		writeJSON(w, status, problem)
		return
	}
	scopes, bad := t.parseScopes(r.PostForm.Get("scope"))
	if bad != "" {
		writeJSON(w, http.StatusBadRequest, aadError("invalid_scope", bad))
		return
	}
	s.grant(w, r, t, app, scopes)
}

// grant answers a token request by its grant type, once the client is
// authenticated and the scopes parsed.
func (s *Server) grant(w http.ResponseWriter, r *http.Request, t *Tenant, app *App, scopes []scope) {
	f := r.PostForm
	asked, problem := parseClaimsRequest(f.Get("claims"))
	if problem != "" {
		writeJSON(w, http.StatusBadRequest, aadError("invalid_request", problem))
		return
	}
	switch f.Get("grant_type") {
	case "authorization_code":
		g, e := s.redeemCode(t, app, f.Get("code"), f.Get("redirect_uri"), f.Get("code_verifier"))
		if e != nil {
			writeJSON(w, http.StatusBadRequest, e)
			return
		}
		if len(scopes) == 0 {
			scopes = g.req.scopes
		}
		asked = g.req.claims.merged(asked)
		if asked.missing(g.contexts) {
			writeJSON(w, http.StatusBadRequest, interactionRequired(asked.raw))
			return
		}
		if rt := s.userTokens(w, r, g.grant, scopes, g.req.nonce, asked); rt != "" {
			s.oauth.mu.Lock()
			g.issued = append(g.issued, rt)
			s.oauth.mu.Unlock()
		}
	case "refresh_token":
		s.oauth.mu.Lock()
		g, ok := s.oauth.refresh[f.Get("refresh_token")]
		s.oauth.mu.Unlock()
		switch {
		case !ok || g.app != app || g.tenant != t:
			writeJSON(w, http.StatusBadRequest, aadError("invalid_grant", "AADSTS9002313: Invalid request. The refresh token is malformed or was not issued to this client."))
			return
		case s.oauth.clock().After(g.expires):
			writeJSON(w, http.StatusBadRequest, aadError("invalid_grant", "AADSTS700082: The refresh token has expired due to inactivity."))
			return
		case asked.missing(g.contexts):
			// A step-up needs the user: the refresh token cannot give it.
			writeJSON(w, http.StatusBadRequest, interactionRequired(asked.raw))
			return
		}
		s.userTokens(w, r, *g, scopes, "", asked)
	case jwtBearerGrant:
		s.onBehalfOf(w, r, t, app, scopes, asked)
	case "client_credentials":
		if app.Public {
			writeJSON(w, http.StatusBadRequest, aadError("unauthorized_client", "AADSTS7000218: A public client cannot use the client credentials flow."))
			return
		}
		s.appToken(w, t, app, scopes, f.Get("scope"))
	case "":
		writeJSON(w, http.StatusBadRequest, aadError("invalid_request", "AADSTS900144: The request body must contain the following parameter: 'grant_type'."))
	default:
		writeJSON(w, http.StatusBadRequest, aadError("unsupported_grant_type", "AADSTS70003: The app requested an unsupported grant type '"+f.Get("grant_type")+"'."))
	}
}

// authenticateClient checks client_id and client_secret (in the form, or
// HTTP Basic, form-urlencoded as RFC 6749 §2.3.1 has it). Public clients
// send no secret.
func (s *Server) authenticateClient(r *http.Request, t *Tenant) (*App, map[string]any) {
	if kind := r.PostForm.Get("client_assertion_type"); kind != "" || r.PostForm.Has("client_assertion") {
		if kind != clientAssertionType {
			return nil, aadError("invalid_request", "AADSTS700024: client_assertion_type must be "+clientAssertionType+".")
		}
		if r.PostForm.Has("client_secret") {
			return nil, aadError("invalid_request", "AADSTS50027: Send a client_secret or a client_assertion, not both.")
		}
		return s.assertionApp(t, r.PostForm.Get("client_id"), r.PostForm.Get("client_assertion"))
	}
	id, secret, basic := r.BasicAuth()
	if basic {
		var err1, err2 error
		id, err1 = url.QueryUnescape(id)
		secret, err2 = url.QueryUnescape(secret)
		if err1 != nil || err2 != nil {
			return nil, aadError("invalid_client", "AADSTS7000215: The client credentials in the Authorization header are malformed.")
		}
	} else {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	app := s.oauth.app(t, id)
	switch {
	case id == "":
		return nil, aadError("invalid_request", "AADSTS900144: The request body must contain the following parameter: 'client_id'.")
	case app == nil:
		return nil, aadError("unauthorized_client", "AADSTS700016: Application with identifier '"+id+"' was not found in the directory '"+t.Domain+"'.")
	case app.Public && secret == "":
		return app, nil
	case app.Public:
		return nil, aadError("invalid_client", "AADSTS700025: Client is public so neither 'client_assertion' nor 'client_secret' should be presented.")
	case secret == "":
		return nil, aadError("invalid_client", "AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
	case app.Secret == "" || !equalSecret(secret, app.Secret):
		return nil, aadError("invalid_client", "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '"+app.ClientID+"'.")
	}
	return app, nil
}

// redeemCode checks an authorization code: issued to this client for this
// redirect URI, not expired, not used before, and matching the PKCE
// verifier when the request had a challenge.
func (s *Server) redeemCode(t *Tenant, app *App, code, redirectURI, verifier string) (*authCode, map[string]any) {
	now := s.oauth.clock()
	s.oauth.mu.Lock()
	defer s.oauth.mu.Unlock()
	c, ok := s.oauth.codes[code]
	switch {
	case !ok || c.tenant != t:
		return nil, aadError("invalid_grant", "AADSTS9002313: Invalid request. The authorization code is malformed or invalid.")
	case c.used:
		// A code used twice may have been stolen: what it gave is revoked
		// (RFC 6749 §4.1.2).
		for _, rt := range c.issued {
			delete(s.oauth.refresh, rt)
		}
		return nil, aadError("invalid_grant", "AADSTS54005: OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.")
	case now.After(c.expires):
		return nil, aadError("invalid_grant", "AADSTS70008: The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.")
	case c.app != app:
		return nil, aadError("invalid_grant", "AADSTS70000: The provided value for the 'code' parameter is not valid: it was issued to another application.")
	case c.req.redirectURI != redirectURI:
		return nil, aadError("invalid_grant", "AADSTS500117: The reply uri specified in the request isn't matching the reply uri used to obtain the authorization code.")
	}
	// From here the code is spent, whatever the outcome: a failed PKCE
	// attempt must not leave it for a second guess.
	c.used = true
	switch {
	case c.req.challenge == "" && verifier != "":
		// A verifier without a challenge is a PKCE downgrade (RFC 9700 §2.1.1).
		return nil, aadError("invalid_grant", "AADSTS501481: A code_verifier was sent, but the authorization request had no code_challenge.")
	case c.req.challenge != "" && verifier == "":
		return nil, aadError("invalid_grant", "AADSTS501481: The Code_Verifier is missing.")
	case c.req.challenge != "" && !pkceSyntax(verifier):
		return nil, aadError("invalid_grant", "AADSTS501481: The Code_Verifier is malformed: 43 to 128 characters of A-Z a-z 0-9 - . _ ~.")
	case c.req.challenge != "" && !pkceMatches(c.req.method, c.req.challenge, verifier):
		return nil, aadError("invalid_grant", "AADSTS501481: The Code_Verifier does not match the code_challenge supplied in the authorization request.")
	}
	return c, nil
}

// userTokens answers a user's token request: an access token for the
// resource of the scopes asked (only the permissions the user granted),
// an ID token when openid is asked, a refresh token for offline_access,
// which it returns.
func (s *Server) userTokens(w http.ResponseWriter, r *http.Request, g grant, scopes []scope, nonce string, asked claimsRequest) (refreshToken string) {
	t := g.tenant
	resource := resourceOf(scopes)
	granted := s.oauth.grantedFor(g, resource, scopes)
	onlyOIDC := !slices.ContainsFunc(scopes, func(s scope) bool { return s.resource != "" }) // a Graph token for the OpenID scopes
	if (len(granted) == 0 && !onlyOIDC) || !s.oauth.allGranted(g, resource, scopes) {
		// Entra issues no token with fewer permissions than asked: every
		// permission named must have been granted (.default takes what was).
		e := aadError("invalid_grant", "AADSTS65001: The user or administrator has not consented to use the application with ID '"+g.app.ClientID+"'. Send an interactive authorization request for this user and resource.")
		e["suberror"] = "consent_required"
		writeJSON(w, http.StatusBadRequest, e)
		return ""
	}
	var names []string
	for _, sc := range granted {
		names = append(names, sc.name)
	}
	var access string
	life := s.tokenLifetime()
	expires := s.oauth.clock().Add(life)
	opts := []TokenOption{ForUser(g.user), ClientApp(g.app.ClientID), Claim("azpacr", "1"), Claim("sid", g.sid), Lifetime(life)}
	if resource == "api" || strings.HasPrefix(resource, "app:") {
		if resource != "api" {
			opts = append(opts, Audience(scope{resource: resource}.audience(t)))
		}
		// The APIs ask for acrs and xms_cc as optional claims.
		if len(g.contexts) > 0 {
			opts = append(opts, AuthContexts(g.contexts...))
		}
		if len(asked.capabilities) > 0 {
			opts = append(opts, ClientCapabilities(asked.capabilities...))
		}
		access = t.AccessToken(append(opts, Scopes(names...))...)
	} else {
		names = append(names, oidcNames(scopes)...)
		// Graph's tokens carry a nonce header that makes them unverifiable
		// by anyone but Graph, as Microsoft's do.
		access = t.AccessToken(append(opts, Audience(GraphAppID), Scopes(names...), Header("nonce", opaque(32)))...)
		s.oauth.mu.Lock()
		s.oauth.graph[access] = graphToken{tenant: t, user: g.user, expires: expires}
		s.oauth.mu.Unlock()
	}
	body := map[string]any{
		"token_type": "Bearer", "expires_in": int(life / time.Second), "ext_expires_in": int(life / time.Second),
		"access_token": access, "scope": fullScopes(t, granted, scopes),
	}
	if hasScope(scopes, "openid") {
		body["id_token"] = idTokenFor(g, scopes, nonce)
	}
	if hasScope(scopes, "offline_access") {
		refreshToken = s.newRefreshToken(g)
		body["refresh_token"] = refreshToken
	}
	if r.PostForm.Get("client_info") == "1" {
		body["client_info"] = clientInfo(g)
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, body)
	return refreshToken
}

// appToken answers client credentials: an app-only token for the
// resource of the one .default scope asked, carrying the app roles granted
// to the client.
func (s *Server) appToken(w http.ResponseWriter, t *Tenant, app *App, asked []scope, raw string) {
	// OpenID scopes mean nothing here; clients such as MSAL add them, and
	// Entra ignores them.
	var scopes []scope
	for _, sc := range asked {
		if sc.resource != "" {
			scopes = append(scopes, sc)
		}
	}
	if len(scopes) != 1 || scopes[0].name != ".default" {
		writeJSON(w, http.StatusBadRequest, aadError("invalid_scope", "AADSTS1002012: The provided value for scope "+raw+" is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."))
		return
	}
	life := s.tokenLifetime()
	opts := []TokenOption{ClientApp(app.ClientID), Claim("oid", app.ObjectID), Claim("sub", app.ObjectID), Lifetime(life)}
	graph := scopes[0].resource == "graph"
	switch {
	case graph:
		opts = append(opts, Audience(GraphAppID), Header("nonce", opaque(32)), Roles(app.GraphRoles...))
	case len(app.Roles) > 0:
		opts = append(opts, Roles(app.Roles...))
	}
	access := t.AppToken(opts...)
	if graph {
		expires := s.oauth.clock().Add(life)
		s.oauth.mu.Lock()
		s.oauth.graph[access] = graphToken{tenant: t, app: app, expires: expires}
		s.oauth.mu.Unlock()
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]any{
		"token_type": "Bearer", "expires_in": int(life / time.Second), "ext_expires_in": int(life / time.Second),
		"access_token": access,
	})
}

func oidcNames(scopes []scope) []string {
	var out []string
	for _, s := range scopes {
		if s.resource == "" && s.name != "offline_access" {
			out = append(out, s.name)
		}
	}
	return out
}

// fullScopes is the scope member of a token response: the granted
// permissions by their full names, and the OpenID scopes asked.
func fullScopes(t *Tenant, granted, asked []scope) string {
	var out []string
	for _, sc := range granted {
		full := sc.full(t)
		// Graph's permissions come back in the form they were asked in:
		// User.Read, or https://graph.microsoft.com/User.Read.
		for _, a := range asked {
			if sc.resource == "graph" && a.key() == sc.key() && strings.Contains(a.raw, "/") {
				full = graphResource + "/" + sc.name
			}
		}
		out = append(out, full)
	}
	for _, sc := range asked {
		if sc.resource == "" {
			out = append(out, sc.name)
		}
	}
	return strings.Join(out, " ")
}

// graphMe answers Microsoft Graph's GET /v1.0/me for the Graph tokens this
// server issued, and refuses every other token as Graph does.
func (s *Server) graphMe(w http.ResponseWriter, r *http.Request) {
	raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	s.oauth.mu.Lock()
	g, known := s.oauth.graph[raw]
	s.oauth.mu.Unlock()
	if !ok || !known || s.oauth.clock().After(g.expires) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="", authorization_uri="`+s.URL+`/common/oauth2/authorize", client_id="`+GraphAppID+`"`)
		writeJSON(w, http.StatusUnauthorized, map[string]any{"error": map[string]any{
			"code": "InvalidAuthenticationToken", "message": "Access token validation failure. Invalid audience.",
		}})
		return
	}
	if g.app != nil {
		writeJSON(w, http.StatusBadRequest, graphError("BadRequest", "/me request is only valid with delegated authentication flow."))
		return
	}
	given, family := g.user.GivenName, g.user.FamilyName
	writeJSON(w, http.StatusOK, map[string]any{
		"@odata.context":    "https://graph.microsoft.com/v1.0/$metadata#users/$entity",
		"id":                g.user.ObjectID,
		"displayName":       g.user.Name,
		"givenName":         nilIfEmpty(given),
		"surname":           nilIfEmpty(family),
		"userPrincipalName": g.user.Username,
		"mail":              g.user.Username,
		"businessPhones":    []string{},
		"jobTitle":          nil,
		"mobilePhone":       nil,
		"officeLocation":    nil,
		"preferredLanguage": "en-US",
	})
}

// idTokenFor is the ID token a grant's token response carries.
func idTokenFor(g grant, scopes []scope, nonce string) string {
	opts := []TokenOption{ForUser(g.user), Audience(g.app.ClientID), Claim("sid", g.sid), Claim("auth_time", g.authAt.Unix()),
		Claim("login_hint", "O."+opaque(24))}
	if hasScope(scopes, "email") {
		opts = append(opts, Claim("email", g.user.Username))
	}
	if nonce != "" {
		opts = append(opts, Nonce(nonce))
	} else {
		opts = append(opts, WithoutClaim("nonce"))
	}
	return g.tenant.IDToken(opts...)
}

// newRefreshToken issues a refresh token for g, valid 90 days.
func (s *Server) newRefreshToken(g grant) string {
	rt := "1." + opaque(128)
	ng := g
	ng.expires = s.oauth.clock().Add(90 * 24 * time.Hour)
	s.oauth.mu.Lock()
	s.oauth.refresh[rt] = &ng
	s.oauth.mu.Unlock()
	return rt
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}
