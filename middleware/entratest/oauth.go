package entratest

import (
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// The OAuth 2.0 and OpenID Connect endpoints of a tenant, shaped like
// Entra's v2.0 endpoints, enough for a real OAuth client (MSAL) to sign a
// user in with the authorization-code flow and PKCE, refresh tokens, and
// get app-only tokens with client credentials:
//
//	/{tenant}/oauth2/v2.0/authorize   a sign-in page listing the tenant's
//	                                  users, a consent page, the code
//	/{tenant}/oauth2/v2.0/token       authorization_code, refresh_token,
//	                                  client_credentials
//	/{tenant}/oauth2/v2.0/logout      ends the sign-in session
//	/v1.0/me                          a Microsoft Graph /me for the
//	                                  Graph tokens this server issued
//
// Errors carry Entra's codes (AADSTS...): unknown applications and
// redirect URIs are shown on an error page, never redirected to; the
// others go back to the redirect URI as error and error_description.

// GraphAppID is Microsoft Graph's application ID, the audience of the
// Graph access tokens the server issues.
const GraphAppID = "00000003-0000-0000-c000-000000000000"

const graphResource = "https://graph.microsoft.com"

// graphScopes are the Microsoft Graph delegated permissions the fake knows.
var graphScopes = []string{"User.Read", "User.ReadBasic.All", "Mail.Read", "Calendars.Read", "Files.Read"}

// oidcScopes need no consent of their own and name no resource.
var oidcScopes = []string{"openid", "profile", "email", "offline_access"}

// Lifetimes Entra uses.
const (
	codeLifetime    = 10 * time.Minute
	pendingLifetime = 30 * time.Minute
)

// App is an application registered in a tenant: a web app that signs users
// in (Secret and RedirectURIs), or a daemon (Secret and Roles).
type App struct {
	// Name is shown on the consent page.
	Name string
	// ClientID is the application ID (default: random). ObjectID is its
	// service principal in the tenant, the oid of its app-only tokens.
	ClientID, ObjectID string
	// Secret is its client secret; the token endpoint refuses other
	// secrets.
	Secret string
	// RedirectURIs are where authorization codes may be sent, and where
	// sign-out may return, compared exactly.
	RedirectURIs []string
	// Public marks a public client (a native app or SPA): it has no secret,
	// and must use PKCE.
	Public bool
	// Permissions are the delegated permissions configured on the
	// registration, as a client requests them ("User.Read",
	// "api://{api}/SecureData.Read"): what a request for a resource's
	// .default asks the user to consent to.
	Permissions []string
	// Roles are the application permissions (app roles of the tenant's
	// API) an administrator granted it: the roles of its app-only tokens.
	Roles []string
	// GraphRoles are the Microsoft Graph application permissions granted
	// to it, e.g. "GroupMember.Read.All": the roles of its app-only Graph
	// tokens, which the Graph endpoints check.
	GraphRoles []string
	// Groups are the object IDs of the groups its service principal is a
	// member of, for Graph's transitiveMemberOf.
	Groups []string

	// Scopes are the delegated permissions it exposes, when it is a web
	// API of its own beside the tenant's (a middle tier): clients request
	// them as api://{ClientID}/{scope}, and its tokens' aud is ClientID.
	Scopes []string
	// KnownClients are the client IDs whose users consent, with their
	// consent to this API's Scopes, to this API's own Permissions too
	// (Entra's combined consent): what a middle tier needs for its
	// on-behalf-of calls.
	KnownClients []string
	// Certificates are its certificate credentials: client assertions
	// signed with their keys authenticate it.
	Certificates []*x509.Certificate
	// Federated are its federated credentials: tokens of an external
	// issuer (a WorkloadIssuer, such as a Kubernetes cluster's) that
	// authenticate it as client assertions.
	Federated []FederatedCredential
}

// FederatedCredential trusts an external issuer's tokens for one subject,
// as an app registration's federated identity credential does.
type FederatedCredential struct {
	Issuer  string // the issuer URL, e.g. a WorkloadIssuer's
	Subject string // e.g. system:serviceaccount:orders:reports
	// Audiences of the token; default api://AzureADTokenExchange.
	Audiences []string
}

// RegisterApp registers an application in the tenant, for the OAuth
// endpoints, and returns the registration.
func (t *Tenant) RegisterApp(app App) *App {
	if app.ClientID == "" {
		app.ClientID = NewGUID()
	}
	if app.ObjectID == "" {
		app.ObjectID = NewGUID()
	}
	if app.Name == "" {
		app.Name = "App " + app.ClientID[:8]
	}
	app.ClientID = strings.ToLower(app.ClientID)
	app.RedirectURIs = slices.Clone(app.RedirectURIs)
	app.Permissions = slices.Clone(app.Permissions)
	app.Roles = slices.Clone(app.Roles)
	app.GraphRoles = slices.Clone(app.GraphRoles)
	app.Groups = slices.Clone(app.Groups)
	app.Scopes = slices.Clone(app.Scopes)
	app.KnownClients = slices.Clone(app.KnownClients)
	app.Certificates = slices.Clone(app.Certificates)
	app.Federated = slices.Clone(app.Federated)
	for i, f := range app.Federated {
		if len(f.Audiences) == 0 {
			app.Federated[i].Audiences = []string{TokenExchangeAudience}
		}
	}
	o := &t.server.oauth
	o.mu.Lock()
	defer o.mu.Unlock()
	key := t.ID + "|" + app.ClientID
	if _, dup := o.apps[key]; dup {
		panic("entratest: app " + app.ClientID + " is already registered in tenant " + t.ID)
	}
	o.apps[key] = &app
	return &app
}

// AddUser adds a user to the tenant's sign-in page, next to User.
// ObjectID and Username are filled in when empty.
func (t *Tenant) AddUser(u User) User {
	if u.ObjectID == "" {
		u.ObjectID = NewGUID()
	}
	if u.Username == "" {
		first, _, _ := strings.Cut(strings.ToLower(u.Name), " ")
		u.Username = first + "@" + t.Domain
	}
	o := &t.server.oauth
	o.mu.Lock()
	defer o.mu.Unlock()
	o.users[t.ID] = append(o.users[t.ID], u)
	return u
}

// Users lists who can sign in to the tenant: User, then those added.
func (t *Tenant) Users() []User {
	o := &t.server.oauth
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]User{t.User}, o.users[t.ID]...)
}

func (t *Tenant) user(oid string) (User, bool) {
	for _, u := range t.Users() {
		if u.ObjectID == oid {
			return u, true
		}
	}
	return User{}, false
}

// ExposeScopes sets the delegated permissions the tenant's API exposes
// (default DefaultScope): what apps may request as api://{ClientID}/{scope}.
func (t *Tenant) ExposeScopes(scopes ...string) {
	o := &t.server.oauth
	o.mu.Lock()
	defer o.mu.Unlock()
	o.apiScopes[t.ID] = slices.Clone(scopes)
}

func (t *Tenant) exposedScopes() []string {
	o := &t.server.oauth
	o.mu.Lock()
	defer o.mu.Unlock()
	if s, ok := o.apiScopes[t.ID]; ok {
		return s
	}
	return []string{DefaultScope}
}

// oauthState is a server's sign-in state: registrations, pending
// requests, codes, sessions, grants.
type oauthState struct {
	mu        sync.Mutex
	apps      map[string]*App     // tenant|client
	users     map[string][]User   // tenant -> users beyond Tenant.User
	apiScopes map[string][]string // tenant -> exposed scopes
	pending   map[string]*authRequest
	codes     map[string]*authCode
	refresh   map[string]*grant
	sessions  map[string]*grant          // SSO cookie -> who signed in
	consents  map[string]map[string]bool // tenant|user|client -> scope keys
	graph     map[string]graphToken      // Graph tokens issued
	now       func() time.Time           // when codes, refresh tokens and Graph tokens expire
	lifetime  time.Duration              // of the access tokens the token endpoint issues; 0: DefaultLifetime
}

// SetClock sets the clock the OAuth endpoints judge expiry by (codes,
// refresh tokens, Graph tokens), so that tests can age them. Default
// time.Now.
func (s *Server) SetClock(now func() time.Time) {
	s.oauth.mu.Lock()
	defer s.oauth.mu.Unlock()
	s.oauth.now = now
}

// SetTokenLifetime sets the lifetime of the access tokens the token
// endpoint issues (and the expires_in it answers), so that a client's
// renewal before expiry can be tested. Default DefaultLifetime; zero
// restores it.
func (s *Server) SetTokenLifetime(d time.Duration) {
	s.oauth.mu.Lock()
	defer s.oauth.mu.Unlock()
	s.oauth.lifetime = d
}

func (s *Server) tokenLifetime() time.Duration {
	s.oauth.mu.Lock()
	defer s.oauth.mu.Unlock()
	if s.oauth.lifetime > 0 {
		return s.oauth.lifetime
	}
	return DefaultLifetime
}

func (o *oauthState) clock() time.Time {
	o.mu.Lock()
	now := o.now
	o.mu.Unlock()
	return now()
}

func (o *oauthState) init() {
	o.apps = map[string]*App{}
	o.users = map[string][]User{}
	o.apiScopes = map[string][]string{}
	o.pending = map[string]*authRequest{}
	o.codes = map[string]*authCode{}
	o.refresh = map[string]*grant{}
	o.sessions = map[string]*grant{}
	o.consents = map[string]map[string]bool{}
	o.graph = map[string]graphToken{}
	o.now = time.Now
}

// scope is one requested permission.
type scope struct {
	// resource is "" (OpenID), "api" (the tenant's API), "graph", or
	// "app:{client ID}" (an app exposing Scopes).
	resource string
	name     string // SecureData.Read, User.Read, .default, openid...
	raw      string // as requested
	// forApp, on a consent page, is the app the user consents for when it
	// is not the one signing in (combined consent for a middle tier).
	forApp string
}

func (s scope) key() string { return s.resource + ":" + s.name }

// formKey names the scope on the consent page.
func (s scope) formKey() string {
	if s.forApp != "" {
		return s.forApp + "|" + s.key()
	}
	return s.key()
}

// full is how Entra names a granted scope in token responses: an API's by
// its URI, Microsoft Graph's by its bare name.
func (s scope) full(t *Tenant) string {
	switch {
	case s.resource == "api":
		return "api://" + t.ClientID + "/" + s.name
	case strings.HasPrefix(s.resource, "app:"):
		return "api://" + strings.TrimPrefix(s.resource, "app:") + "/" + s.name
	}
	return s.name
}

// audience is the aud of the resource's access tokens.
func (s scope) audience(t *Tenant) string {
	if id, ok := strings.CutPrefix(s.resource, "app:"); ok {
		return id
	}
	return t.ClientID
}

// authRequest is an authorization request waiting for the user.
type authRequest struct {
	id                   string
	tenant               *Tenant
	app                  *App
	redirectURI, state   string
	nonce, loginHint     string
	challenge, method    string // PKCE
	prompt, responseMode string
	scopes               []scope
	shown                []scope // on the consent page
	claims               claimsRequest
	created              time.Time
}

// grant is who signed in to which app, for a session or a refresh token.
type grant struct {
	tenant  *Tenant
	user    User
	app     *App // nil for SSO sessions
	sid     string
	authAt  time.Time
	expires time.Time
	// contexts are the authentication contexts the user satisfied: on an
	// SSO session, every step-up of the browser; on a code or refresh
	// token, those its authorization request asked for.
	contexts []string
}

type authCode struct {
	grant
	req     *authRequest
	expires time.Time
	used    bool
	issued  []string // refresh tokens issued from it, revoked if it is reused
}

// graphToken is a Microsoft Graph token the server issued: a user's, or
// an app's (user empty, app set).
type graphToken struct {
	tenant  *Tenant
	user    User
	app     *App
	expires time.Time
}

// parseScopes reads a scope parameter, refusing what the tenant does not
// expose.
func (t *Tenant) parseScopes(raw string) ([]scope, string) {
	var out []scope
	exposed := t.exposedScopes()
	for _, s := range strings.Fields(raw) {
		sc := scope{raw: s}
		lower := strings.ToLower(s)
		switch {
		case slices.Contains(oidcScopes, lower):
			sc.name = lower
		case strings.HasPrefix(lower, graphResource+"/"):
			sc.resource, sc.name = "graph", s[len(graphResource)+1:]
		case strings.HasPrefix(lower, "api://"+t.ClientID+"/"):
			sc.resource, sc.name = "api", s[len("api://"+t.ClientID)+1:]
		case strings.HasPrefix(lower, t.ClientID+"/"):
			sc.resource, sc.name = "api", s[len(t.ClientID)+1:]
		case !strings.Contains(s, "/"):
			sc.resource, sc.name = "graph", s // bare names are Graph's
		default:
			app := t.apiApp(s)
			if app == nil {
				return nil, fmt.Sprintf("AADSTS500011: The resource principal named %s was not found in the tenant named %s.", strings.Split(s, "/")[0], t.ID)
			}
			sc.resource, sc.name = "app:"+app.ClientID, s[strings.LastIndexByte(s, '/')+1:]
		}
		// Entra compares scope names case-insensitively; they are kept in
		// the spelling the API (or Graph) gave them.
		known := graphScopes
		switch {
		case sc.resource == "api":
			known = exposed
		case strings.HasPrefix(sc.resource, "app:"):
			known = t.server.oauth.app(t, strings.TrimPrefix(sc.resource, "app:")).Scopes
		}
		if sc.resource != "" && sc.name != ".default" {
			i := slices.IndexFunc(known, func(k string) bool { return strings.EqualFold(k, sc.name) })
			if i < 0 {
				return nil, "AADSTS70011: The provided value for the input parameter 'scope' is not valid. The scope " + s + " is not valid."
			}
			sc.name = known[i]
		}
		if sc.name == ".DEFAULT" || strings.EqualFold(sc.name, ".default") {
			sc.name = ".default"
		}
		out = append(out, sc)
	}
	return out, ""
}

// apiApp is the registered app exposing scopes that a scope URI
// (api://{client ID}/x or {client ID}/x) names, or nil.
func (t *Tenant) apiApp(uri string) *App {
	rest := strings.TrimPrefix(strings.ToLower(uri), "api://")
	id, _, ok := strings.Cut(rest, "/")
	if !ok {
		return nil
	}
	if app := t.server.oauth.app(t, id); app != nil && len(app.Scopes) > 0 {
		return app
	}
	return nil
}

// expandDefault replaces a resource's .default with the delegated
// permissions the app's registration configures for that resource, which
// is what the user is asked to consent to.
func (t *Tenant) expandDefault(app *App, scopes []scope) []scope {
	var out []scope
	for _, sc := range scopes {
		if sc.resource == "" || sc.name != ".default" {
			out = append(out, sc)
			continue
		}
		configured, _ := t.parseScopes(strings.Join(app.Permissions, " "))
		for _, c := range configured {
			if c.resource == sc.resource && !slices.ContainsFunc(out, func(o scope) bool { return o.key() == c.key() }) {
				out = append(out, c)
			}
		}
		out = append(out, sc)
	}
	return out
}

// resourceOf is the resource a token request is for: that of its first
// scope naming one, or Graph for OpenID scopes alone, as Entra does.
func resourceOf(scopes []scope) string {
	for _, s := range scopes {
		if s.resource != "" {
			return s.resource
		}
	}
	return "graph"
}

func hasScope(scopes []scope, name string) bool {
	return slices.ContainsFunc(scopes, func(s scope) bool { return s.resource == "" && s.name == name })
}

// needsConsent lists the requested permissions the user has not granted
// the app yet, and, for a middle tier whose known client the app is, the
// middle tier's own permissions the user has not granted it (combined
// consent). With all, every permission requested (prompt=consent).
func (o *oauthState) needsConsent(req *authRequest, u User, all bool) []scope {
	t := req.tenant
	var out []scope
	add := func(s scope, app string) {
		if (all || !o.hasConsent(t, u, app, s)) && !slices.ContainsFunc(out, func(o scope) bool { return o.formKey() == s.formKey() }) {
			out = append(out, s)
		}
	}
	for _, s := range req.scopes {
		if s.resource != "" && s.name != ".default" {
			add(s, req.app.ClientID)
		}
	}
	for _, s := range req.scopes {
		mid, ok := strings.CutPrefix(s.resource, "app:")
		api := o.app(t, mid)
		if !ok || api == nil || !slices.Contains(api.KnownClients, req.app.ClientID) {
			continue
		}
		downstream, _ := t.parseScopes(strings.Join(api.Permissions, " "))
		for _, d := range downstream {
			d.forApp = api.ClientID
			add(d, api.ClientID)
		}
	}
	return out
}

func (o *oauthState) hasConsent(t *Tenant, u User, appID string, s scope) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.consents[t.ID+"|"+u.ObjectID+"|"+appID][s.key()]
}

func (o *oauthState) consent(t *Tenant, u User, app *App, scopes []scope) {
	o.mu.Lock()
	defer o.mu.Unlock()
	key := t.ID + "|" + u.ObjectID + "|" + app.ClientID
	if o.consents[key] == nil {
		o.consents[key] = map[string]bool{}
	}
	for _, s := range scopes {
		o.consents[key][s.key()] = true
	}
}

// grantedFor returns the scopes of resource the user granted the app,
// among those asked (or all of them for .default).
func (o *oauthState) grantedFor(g grant, resource string, asked []scope) []scope {
	o.mu.Lock()
	defer o.mu.Unlock()
	granted := o.consents[g.tenant.ID+"|"+g.user.ObjectID+"|"+g.app.ClientID]
	var out []scope
	for _, s := range asked {
		if s.resource != resource {
			continue
		}
		if s.name == ".default" {
			for key := range granted {
				if name, ok := strings.CutPrefix(key, resource+":"); ok {
					out = append(out, scope{resource: resource, name: name})
				}
			}
			continue
		}
		if granted[s.key()] {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b scope) int { return strings.Compare(a.name, b.name) })
	return slices.CompactFunc(out, func(a, b scope) bool { return a.name == b.name })
}

// allGranted reports whether the user granted the app every permission of
// resource named in asked (.default names none).
func (o *oauthState) allGranted(g grant, resource string, asked []scope) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	granted := o.consents[g.tenant.ID+"|"+g.user.ObjectID+"|"+g.app.ClientID]
	for _, s := range asked {
		if s.resource == resource && s.name != ".default" && !granted[s.key()] {
			return false
		}
	}
	return true
}

func (o *oauthState) app(t *Tenant, clientID string) *App {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.apps[t.ID+"|"+strings.ToLower(clientID)]
}

// aadError is Entra's error body for the token endpoint.
func aadError(code, description string) map[string]any {
	e := entraError(code, description+"\r\nTrace ID: "+NewGUID()+"\r\nCorrelation ID: "+NewGUID()+"\r\nTimestamp: "+time.Now().UTC().Format("2006-01-02 15:04:05Z"))
	var n int
	if _, err := fmt.Sscanf(description, "AADSTS%d", &n); err == nil {
		e["error_codes"] = []int{n}
	}
	return e
}

// redirectError sends an authorization error back to the app, as Entra
// does once it trusts the redirect URI.
func redirectError(w http.ResponseWriter, r *http.Request, req *authRequest, code, description string) {
	q := url.Values{"error": {code}, "error_description": {description}}
	if req.state != "" {
		q.Set("state", req.state)
	}
	respond(w, r, req, q)
}

// respond sends the authorization response to the redirect URI in the
// response mode asked: query (the default for code), fragment, or
// form_post (a page whose form posts the parameters).
func respond(w http.ResponseWriter, r *http.Request, req *authRequest, q url.Values) {
	switch req.responseMode {
	case "form_post":
		page(w, http.StatusOK, formPostPage, formPostData{Action: req.redirectURI, Params: q})
	case "fragment":
		http.Redirect(w, r, req.redirectURI+"#"+q.Encode(), http.StatusFound)
	default:
		http.Redirect(w, r, withQuery(req.redirectURI, q), http.StatusFound)
	}
}

func withQuery(u string, q url.Values) string {
	sep := "?"
	if strings.Contains(u, "?") {
		sep = "&"
	}
	return u + sep + q.Encode()
}

// pkceMatches applies a PKCE method (RFC 7636 §4.2) to the verifier and
// compares with the challenge.
func pkceMatches(method, challenge, verifier string) bool {
	if method == "plain" {
		return equalSecret(verifier, challenge)
	}
	sum := sha256.Sum256([]byte(verifier))
	return equalSecret(base64.RawURLEncoding.EncodeToString(sum[:]), challenge)
}

// pkceSyntax checks a code verifier or challenge: 43 to 128 unreserved
// characters (RFC 7636 §4.1).
func pkceSyntax(v string) bool {
	if len(v) < 43 || len(v) > 128 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~') {
			return false
		}
	}
	return true
}

func equalSecret(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// clientInfo is the client_info MSAL asks for: who the account is.
func clientInfo(g grant) string {
	b, _ := json.Marshal(map[string]string{"uid": g.user.ObjectID, "utid": g.tenant.ID})
	return base64.RawURLEncoding.EncodeToString(b)
}
