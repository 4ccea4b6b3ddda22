package entratest

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/entragate/entragate/middleware"
)

// Endpoint names the documents a Server serves, for faults and counts.
// Values combine with |.
type Endpoint uint16

const (
	MetadataV2  Endpoint = 1 << iota // {tenant}/v2.0/.well-known/openid-configuration
	MetadataV1                       // {tenant}/.well-known/openid-configuration
	KeysV2                           // {tenant}/discovery/v2.0/keys
	KeysV1                           // {tenant}/discovery/keys
	Authorize                        // {tenant}/oauth2/v2.0/authorize
	Token                            // {tenant}/oauth2/v2.0/token
	Logout                           // {tenant}/oauth2/v2.0/logout
	GraphMe                          // /v1.0/me
	GraphGroups                      // /v1.0/users/{id}/transitiveMemberOf/microsoft.graph.group

	Metadata = MetadataV1 | MetadataV2
	Keys     = KeysV1 | KeysV2
	// All is every metadata and key-set endpoint: what faults and delays
	// usually aim at.
	All = Metadata | Keys
	// OAuth is the sign-in endpoints and Graph.
	OAuth = Authorize | Token | Logout | GraphMe | GraphGroups
)

var endpoints = []Endpoint{MetadataV2, MetadataV1, KeysV2, KeysV1, Authorize, Token, Logout, GraphMe, GraphGroups}

var endpointNames = map[Endpoint]string{MetadataV2: "MetadataV2", MetadataV1: "MetadataV1", KeysV2: "KeysV2", KeysV1: "KeysV1",
	Authorize: "Authorize", Token: "Token", Logout: "Logout", GraphMe: "GraphMe", GraphGroups: "GraphGroups"}

func (e Endpoint) String() string {
	var names []string
	for _, one := range endpoints {
		if e&one != 0 {
			names = append(names, endpointNames[one])
		}
	}
	return strings.Join(names, "|")
}

// Fault is a failure a Server can simulate on an endpoint.
type Fault int

const (
	// NoFault serves the endpoint normally.
	NoFault Fault = iota
	// Unavailable answers 503 Service Unavailable.
	Unavailable
	// ServerError answers 500 Internal Server Error.
	ServerError
	// Hang never answers: the request blocks until the client gives up or
	// the server closes.
	Hang
	// Garbage answers 200 with a body that is not JSON.
	Garbage
	// Huge answers 200 with a 16 MiB JSON body.
	Huge
	// EmptyKeySet answers key-set requests with {"keys":[]}.
	EmptyKeySet
)

func (f Fault) String() string {
	names := [...]string{"NoFault", "Unavailable", "ServerError", "Hang", "Garbage", "Huge", "EmptyKeySet"}
	if f < 0 || int(f) >= len(names) {
		return "Fault(" + strconv.Itoa(int(f)) + ")"
	}
	return names[f]
}

// Server is a fake Entra ID authority on loopback. It serves the OpenID
// metadata and key-set documents of its tenants, and of the multi-tenant
// common and organizations authorities, shaped like Microsoft's. Like
// Entra, it signs for all its tenants with the same published keys.
type Server struct {
	// URL is the authority host, e.g. http://127.0.0.1:53211: the host of
	// the API's authorities, as in middleware.EntraTenant(t.ID).WithHost(URL)
	// or middleware.EntraMultiTenant(...).WithHost(URL), which is what
	// Tenant.Authority and Tenant.Config return.
	URL string

	srv     *httptest.Server
	closing chan struct{}
	once    sync.Once
	opts    serverOptions
	cert    *x509.Certificate // with TLS
	oauth   oauthState

	mu         sync.Mutex
	tenants    map[string]*Tenant // by ID and by domain
	published  []*Key
	restricted map[*Key]string   // key -> the only tenant it may sign for
	keyIssuers map[*Key]string   // key -> the issuer every key set names for it (SetKeyIssuer)
	appKeys    map[string][]*Key // application ID -> its own signing keys
	signing    *Key
	nextKey    int
	faults     map[Endpoint]Fault
	delays     map[Endpoint]time.Duration
	counts     map[Endpoint]*atomic.Int64
	extra      *http.ServeMux
	// workloads are the external issuers apps may trust (federated
	// credentials); seenAssertions the client assertions' jti, until they
	// expire.
	workloads      map[string]*WorkloadIssuer
	seenAssertions map[string]time.Time
}

// ServerOption configures a Server at start.
type ServerOption func(*serverOptions)

type serverOptions struct {
	freshKeys bool
	cloud     *Cloud
	tls       bool
}

// FreshKeys makes the server sign with keys generated when it starts,
// instead of the pre-generated keys published in this repository: tokens
// it mints can then be minted by nobody else. Starting costs an RSA key
// generation (about a tenth of a second). Use it for anything reachable by
// others, such as a development API on a shared machine.
func FreshKeys() ServerOption { return func(o *serverOptions) { o.freshKeys = true } }

// Cloud is where a national cloud's issuers live. Entra announces issuers on
// hosts of their own: v2.0 issuers on the cloud's login host, v1.0 issuers
// on its token service host.
type Cloud struct {
	// IssuerHost is the host of v2.0 issuers, e.g. https://login.microsoftonline.us.
	IssuerHost string
	// V1IssuerHost is the host of v1.0 issuers, e.g. https://sts.windows.net.
	V1IssuerHost string
}

// The clouds Entra runs, as their issuers name them.
var (
	PublicCloud       = Cloud{IssuerHost: "https://login.microsoftonline.com", V1IssuerHost: "https://sts.windows.net"}
	USGovernmentCloud = Cloud{IssuerHost: "https://login.microsoftonline.us", V1IssuerHost: "https://login.microsoftonline.us"}
	ChinaCloud        = Cloud{IssuerHost: "https://login.partner.microsoftonline.cn", V1IssuerHost: "https://sts.chinacloudapi.cn"}
)

// InCloud makes the server announce the issuers of cloud c (and mint tokens
// with them) while it serves metadata and keys on loopback, the way a
// sovereign cloud's issuers differ from the host its metadata comes from.
// By default v2.0 issuers name the server's own URL and v1.0 issuers
// https://sts.windows.net.
func InCloud(c Cloud) ServerOption { return func(o *serverOptions) { o.cloud = &c } }

// NewServer starts a Server on a random loopback port. Call Close when done;
// in tests, NewTenant does that for you.
func NewServer(opts ...ServerOption) *Server {
	s, err := Start("127.0.0.1:0", opts...)
	if err != nil {
		panic("entratest: " + err.Error())
	}
	return s
}

// Start starts a Server listening on addr, which must be a loopback address
// such as 127.0.0.1:9999 or localhost:9999 (the fake tenant is for tests
// and local development only).
func Start(addr string, opts ...ServerOption) (*Server, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if ip := net.ParseIP(host); !(host == "localhost" || (ip != nil && ip.IsLoopback())) {
		return nil, fmt.Errorf("entratest: %q is not a loopback address", addr)
	}
	s := &Server{
		closing:    make(chan struct{}),
		tenants:    map[string]*Tenant{},
		restricted: map[*Key]string{},
		keyIssuers: map[*Key]string{},
		appKeys:    map[string][]*Key{},
		workloads:  map[string]*WorkloadIssuer{}, seenAssertions: map[string]time.Time{},
		faults: map[Endpoint]Fault{},
		delays: map[Endpoint]time.Duration{},
		counts: map[Endpoint]*atomic.Int64{},
		extra:  http.NewServeMux(),
	}
	for _, o := range opts {
		o(&s.opts)
	}
	for _, e := range endpoints {
		s.counts[e] = &atomic.Int64{}
	}
	s.signing = s.NewKey()
	s.published = []*Key{s.signing}
	s.oauth.init()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	if s.opts.tls {
		cert, leaf, err := selfSigned()
		if err != nil {
			ln.Close()
			return nil, err
		}
		s.cert = leaf
		ln = sniffListener{Listener: ln, config: &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}, MinVersion: tls.VersionTLS12}}
	}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.srv.Listener.Close()
	s.srv.Listener = ln
	s.srv.Start()
	s.URL = s.srv.URL
	if s.opts.tls {
		s.URL = "https://" + ln.Addr().String()
	}
	return s, nil
}

// Close shuts the server down, releasing requests held by Hang.
func (s *Server) Close() {
	s.once.Do(func() {
		close(s.closing)
		s.srv.CloseClientConnections()
		s.srv.Close()
	})
}

// NewKey returns a key that is not published: tokens signed with it carry an
// unknown kid, until PublishKey. Keys come from a pre-generated pool, or are
// generated for servers started with FreshKeys.
func (s *Server) NewKey() *Key {
	if s.opts.freshKeys {
		return generateKey()
	}
	s.mu.Lock()
	i := s.nextKey
	s.nextKey++
	s.mu.Unlock()
	return poolKey(i)
}

// SigningKey is the key tokens are signed with by default.
func (s *Server) SigningKey() *Key {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.signing
}

// PublishedKeys lists the keys in the key sets.
func (s *Server) PublishedKeys() []*Key {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.published)
}

// PublishKey adds k to the key sets. Entra publishes a new key well before
// it signs with it.
func (s *Server) PublishKey(k *Key) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !slices.Contains(s.published, k) {
		s.published = append(s.published, k)
	}
}

// PublishKeyFor adds k to every key set, as a key that may sign only for
// tenant tenantID: its v2.0 key-set entries name that tenant's issuer, like
// the personal-account keys in Entra's common key set. A token of another
// tenant signed with it must be refused.
func (s *Server) PublishKeyFor(k *Key, tenantID string) {
	s.PublishKey(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.restricted[k] = strings.ToLower(tenantID)
}

// SetKeyIssuer makes every key set, v1.0 ones included, name issuer as the
// issuer key k may sign for, whatever Entra would name: a shape Entra does
// not publish today (its v1.0 key sets name no issuer), a blank issuer, or
// a restriction added to a key already in use. The empty string restores
// Entra's own.
func (s *Server) SetKeyIssuer(k *Key, issuer string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if issuer == "" {
		delete(s.keyIssuers, k)
		return
	}
	s.keyIssuers[k] = issuer
}

// SetAppSigningKey gives application appID a signing key of its own, as
// Entra does for an app registration with a custom signing key (claims
// mapping): key sets requested with ?appid=appID list only that key, and
// the regular key sets do not list it. Sign its tokens with SignedWith(k).
func (s *Server) SetAppSigningKey(appID string, k *Key) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.appKeys[strings.ToLower(appID)] = []*Key{k}
}

// RetireKey removes k from the key sets. Tokens it signed then fail.
func (s *Server) RetireKey(k *Key) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.published = slices.DeleteFunc(s.published, func(p *Key) bool { return p == k })
	delete(s.restricted, k)
}

// UseKey makes k the default signing key, whether published or not.
func (s *Server) UseKey(k *Key) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.signing = k
}

// RotateKey publishes a new key and signs with it from now on. The old key
// stays published, as in a real rollover, until RetireKey.
func (s *Server) RotateKey() *Key {
	k := s.NewKey()
	s.PublishKey(k)
	s.UseKey(k)
	return k
}

// SetFault makes the endpoints fail in the given way; NoFault restores them.
func (s *Server) SetFault(e Endpoint, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, one := range endpoints {
		if e&one != 0 {
			s.faults[one] = f
		}
	}
}

// SetDelay makes the endpoints answer only after d (zero removes it).
func (s *Server) SetDelay(e Endpoint, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, one := range endpoints {
		if e&one != 0 {
			s.delays[one] = d
		}
	}
}

// Requests counts the requests the endpoints received, faulty ones included.
func (s *Server) Requests(e Endpoint) int64 {
	var n int64
	for _, one := range endpoints {
		if e&one != 0 {
			n += s.counts[one].Load()
		}
	}
	return n
}

// ResetCounts sets every request count back to zero.
func (s *Server) ResetCounts() {
	for _, c := range s.counts {
		c.Store(0)
	}
}

// Tenant returns the tenant with the given ID or domain, or nil.
func (s *Server) Tenant(idOrDomain string) *Tenant {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tenants[strings.ToLower(idOrDomain)]
}

// Handle adds a route of the caller's own to the server, e.g. a token
// minting endpoint for local development. Tenant routes keep precedence for
// the paths Entra uses.
func (s *Server) Handle(pattern string, h http.Handler) { s.extra.Handle(pattern, h) }

// request is what a request to an Entra path asks for.
type request struct {
	endpoint Endpoint
	segment  string  // the tenant path segment as sent
	tenant   *Tenant // nil for common and organizations
	multi    string  // common or organizations
	policy   string  // B2C
	appID    string  // ?appid=
}

// serve answers /{tenant}/... like login.microsoftonline.com does, and
// /{tenant}/{policy}/... like a B2C tenant's b2clogin.com host.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	req, ok := s.parse(r)
	if !ok {
		if h, pattern := s.extra.Handler(r); pattern != "" {
			h.ServeHTTP(w, r)
			return
		}
		writeJSON(w, http.StatusNotFound, entraError("not_found", "This fake tenant serves only OpenID metadata and signing keys."))
		return
	}
	if req.endpoint&OAuth != 0 {
		s.counts[req.endpoint].Add(1)
		s.serveOAuth(w, r, req)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeJSON(w, http.StatusMethodNotAllowed, entraError("invalid_request", "AADSTS900561: The endpoint only accepts GET requests."))
		return
	}
	s.counts[req.endpoint].Add(1)
	if e := s.refuse(req); e != nil {
		writeJSON(w, http.StatusBadRequest, e)
		return
	}
	if s.misbehave(w, r, req.endpoint) {
		return
	}
	switch req.endpoint {
	case MetadataV2:
		writeJSON(w, http.StatusOK, s.metadataV2(req))
	case MetadataV1:
		writeJSON(w, http.StatusOK, s.metadataV1(req))
	case KeysV2, KeysV1:
		writeJSON(w, http.StatusOK, map[string]any{"keys": s.keySet(req)})
	}
}

// serveOAuth answers the sign-in endpoints of a tenant, and Graph.
func (s *Server) serveOAuth(w http.ResponseWriter, r *http.Request, req request) {
	switch req.endpoint {
	case GraphMe:
		s.graphMe(w, r)
		return
	case GraphGroups:
		if !s.misbehave(w, r, req.endpoint) {
			s.graphGroups(w, r)
		}
		return
	}
	t := req.tenant
	if t == nil || t.Kind == KindB2C {
		msg := "AADSTS90002: Tenant '" + req.segment + "' not found. This fake tenant signs users in through a workforce tenant's own ID or domain."
		if req.endpoint == Token {
			writeJSON(w, http.StatusBadRequest, aadError("invalid_request", msg))
			return
		}
		page(w, http.StatusBadRequest, errorPage, errorData{Code: "invalid_tenant", Message: msg})
		return
	}
	if s.misbehave(w, r, req.endpoint) {
		return
	}
	switch req.endpoint {
	case Authorize:
		s.authorize(w, r, t)
	case Token:
		s.token(w, r, t)
	case Logout:
		s.logout(w, r, t)
	}
}

// parse recognises the Entra paths.
func (s *Server) parse(r *http.Request) (request, bool) {
	if r.URL.Path == "/v1.0/me" {
		return request{endpoint: GraphMe}, true
	}
	if isGraphGroupsPath(r.URL.Path) {
		return request{endpoint: GraphGroups}, true
	}
	segs := strings.Split(strings.TrimPrefix(r.URL.Path, "/"), "/")
	req := request{segment: segs[0], appID: strings.ToLower(r.URL.Query().Get("appid"))}
	rest := strings.Join(segs[1:], "/")
	if t := s.Tenant(segs[0]); t != nil && t.Kind == KindB2C && len(segs) > 2 {
		// /{tenant}/{policy}/v2.0/.well-known/openid-configuration
		req.policy, rest = segs[1], strings.Join(segs[2:], "/")
	}
	switch rest {
	case "v2.0/.well-known/openid-configuration":
		req.endpoint = MetadataV2
	case ".well-known/openid-configuration":
		req.endpoint = MetadataV1
	case "discovery/v2.0/keys":
		req.endpoint = KeysV2
	case "discovery/keys":
		req.endpoint = KeysV1
	case "oauth2/v2.0/authorize":
		req.endpoint = Authorize
	case "oauth2/v2.0/token":
		req.endpoint = Token
	case "oauth2/v2.0/logout":
		req.endpoint = Logout
	default:
		return req, false
	}
	switch tenant := strings.ToLower(segs[0]); tenant {
	case middleware.Common, middleware.Organizations:
		req.multi = tenant
	default:
		req.tenant = s.Tenant(tenant)
	}
	return req, true
}

// refuse answers what Entra refuses: unknown tenants and policies, and v1
// documents where Entra has none.
func (s *Server) refuse(req request) map[string]any {
	t := req.tenant
	switch {
	case req.multi == middleware.Organizations && (req.endpoint == MetadataV1 || req.endpoint == KeysV1):
		// Entra serves v1 documents for common only.
		return entraError("invalid_tenant", "AADSTS90002: Tenant 'organizations' not found.")
	case req.multi != "":
		return nil
	case t == nil:
		return entraError("invalid_tenant", fmt.Sprintf("AADSTS90002: Tenant '%s' not found.", req.segment))
	case t.Kind == KindB2C && !t.hasPolicy(req.policy):
		return entraError("invalid_request", fmt.Sprintf("AADB2C90018: The policy '%s' does not exist in tenant '%s'.", req.policy, t.Domain))
	case t.Kind != KindWorkforce && (req.endpoint == MetadataV1 || req.endpoint == KeysV1):
		return entraError("invalid_request", "AADSTS90002: This tenant serves v2.0 documents only.")
	}
	return nil
}

// misbehave applies the endpoint's delay and fault. It reports whether the
// request was answered (or abandoned) by a fault.
func (s *Server) misbehave(w http.ResponseWriter, r *http.Request, e Endpoint) bool {
	s.mu.Lock()
	fault, delay := s.faults[e], s.delays[e]
	s.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return true
		case <-s.closing:
			return true
		}
	}
	switch fault {
	case Unavailable:
		writeJSON(w, http.StatusServiceUnavailable, entraError("temporarily_unavailable", "AADSTS90033: A transient error has occurred."))
	case ServerError:
		writeJSON(w, http.StatusInternalServerError, entraError("server_error", "AADSTS90000: internal error."))
	case Hang:
		select {
		case <-r.Context().Done():
		case <-s.closing:
		}
	case Garbage:
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("<html><body>Sorry, but we're having trouble signing you in.</body></html>"))
	case Huge:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(`{"keys":[],"padding":"`))
		chunk := []byte(strings.Repeat("A", 64<<10))
		for range 256 {
			if _, err := w.Write(chunk); err != nil {
				return true
			}
		}
		_, _ = w.Write([]byte(`"}`))
	case EmptyKeySet:
		if e&Keys != 0 {
			writeJSON(w, http.StatusOK, map[string]any{"keys": []any{}})
			return true
		}
		return false
	default:
		return false
	}
	return true
}

// issuerV2 is the v2.0 issuer of tenant tid (or the template) on this server.
func (s *Server) issuerV2(tid string) string {
	if s.opts.cloud != nil {
		return s.opts.cloud.IssuerHost + "/" + tid + "/v2.0"
	}
	return s.URL + "/" + tid + "/v2.0"
}

// issuerV1 is the v1.0 issuer of tenant tid (or the template).
func (s *Server) issuerV1(tid string) string {
	host := "https://sts.windows.net"
	if s.opts.cloud != nil {
		host = s.opts.cloud.V1IssuerHost
	}
	return host + "/" + tid + "/"
}

// keySet lists the keys a key-set request gets: the published keys, each
// with the issuer it may sign for on v2.0 endpoints; or an application's
// own keys for ?appid= requests.
func (s *Server) keySet(req request) []map[string]any {
	s.mu.Lock()
	published := slices.Clone(s.published)
	if own := s.appKeys[req.appID]; len(own) > 0 {
		published = slices.Clone(own)
	}
	if req.tenant != nil && req.tenant.Kind == KindB2C {
		if k := req.tenant.policyKey(req.policy); k != nil {
			published = []*Key{k}
		}
	}
	restricted := maps.Clone(s.restricted)
	named := maps.Clone(s.keyIssuers)
	s.mu.Unlock()

	keys := []map[string]any{}
	for _, k := range published {
		issuer := ""
		switch {
		case req.endpoint == KeysV1:
			// v1 key sets name no issuers.
		case restricted[k] != "":
			issuer = s.issuerV2(restricted[k])
		case req.tenant != nil:
			issuer = req.tenant.issuer()
		default:
			issuer = s.issuerV2(middleware.TenantIDPlaceholder)
		}
		if req.tenant != nil && req.tenant.Kind == KindB2C {
			issuer = "" // B2C key sets name no issuers
		}
		if v, ok := named[k]; ok {
			issuer = v
		}
		keys = append(keys, k.jwk(issuer))
	}
	return keys
}

// metadataV2 mirrors Entra's v2.0 OpenID configuration document, or a B2C
// policy's.
func (s *Server) metadataV2(req request) map[string]any {
	base := s.URL + "/" + req.segment
	if req.tenant != nil && req.tenant.Kind == KindB2C {
		return s.metadataB2C(req)
	}
	jwks := base + "/discovery/v2.0/keys"
	if req.appID != "" {
		jwks += "?appid=" + url.QueryEscape(req.appID)
	}
	issuer := s.issuerV2(middleware.TenantIDPlaceholder)
	if req.tenant != nil {
		issuer = req.tenant.issuer()
	}
	return map[string]any{
		"token_endpoint":                        base + "/oauth2/v2.0/token",
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
		"jwks_uri":                              jwks,
		"response_modes_supported":              []string{"query", "fragment", "form_post"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
		"scopes_supported":                      []string{"openid", "profile", "email", "offline_access"},
		"issuer":                                issuer,
		"request_uri_parameter_supported":       false,
		"userinfo_endpoint":                     s.URL + "/oidc/userinfo",
		"authorization_endpoint":                base + "/oauth2/v2.0/authorize",
		"device_authorization_endpoint":         base + "/oauth2/v2.0/devicecode",
		"http_logout_supported":                 true,
		"frontchannel_logout_supported":         true,
		"end_session_endpoint":                  base + "/oauth2/v2.0/logout",
		"claims_supported": []string{"sub", "iss", "cloud_instance_name", "cloud_instance_host_name",
			"cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "nonce",
			"preferred_username", "name", "tid", "ver", "at_hash", "c_hash", "email"},
		"kerberos_endpoint":        base + "/kerberos",
		"tenant_region_scope":      "EU",
		"cloud_instance_name":      "microsoftonline.com",
		"cloud_graph_host_name":    "graph.windows.net",
		"msgraph_host":             "graph.microsoft.com",
		"rbac_url":                 "https://pas.windows.net",
		"tenant_region_sub_scope":  nil,
		"cloud_instance_host_name": strings.TrimPrefix(s.URL, "http://"),
	}
}

// metadataV1 mirrors Entra's v1 document: its issuer is the sts.windows.net
// form v1 tokens carry, and its jwks_uri is the common key set.
func (s *Server) metadataV1(req request) map[string]any {
	base := s.URL + "/" + req.segment
	jwks := s.URL + "/common/discovery/keys"
	if req.appID != "" {
		jwks = base + "/discovery/keys?appid=" + url.QueryEscape(req.appID)
	}
	issuer := s.issuerV1(middleware.TenantIDPlaceholder)
	if req.tenant != nil {
		issuer = s.issuerV1(req.tenant.ID)
	}
	return map[string]any{
		"token_endpoint":                        base + "/oauth2/token",
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
		"jwks_uri":                              jwks,
		"response_modes_supported":              []string{"query", "fragment", "form_post"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"response_types_supported":              []string{"code", "id_token", "code id_token", "token id_token", "token"},
		"scopes_supported":                      []string{"openid"},
		"issuer":                                issuer,
		"microsoft_multi_refresh_token":         true,
		"authorization_endpoint":                base + "/oauth2/authorize",
		"device_authorization_endpoint":         base + "/oauth2/devicecode",
		"http_logout_supported":                 true,
		"frontchannel_logout_supported":         true,
		"end_session_endpoint":                  base + "/oauth2/logout",
		"claims_supported": []string{"sub", "iss", "cloud_instance_name", "cloud_instance_host_name",
			"cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "amr", "nonce",
			"email", "given_name", "family_name", "nickname"},
		"check_session_iframe":     base + "/oauth2/checksession",
		"userinfo_endpoint":        base + "/openid/userinfo",
		"kerberos_endpoint":        base + "/kerberos",
		"tenant_region_scope":      "EU",
		"cloud_instance_name":      "microsoftonline.com",
		"cloud_graph_host_name":    "graph.windows.net",
		"msgraph_host":             "graph.microsoft.com",
		"rbac_url":                 "https://pas.windows.net",
		"cloud_instance_host_name": strings.TrimPrefix(s.URL, "http://"),
	}
}

// metadataB2C mirrors the OpenID configuration of an Azure AD B2C policy:
// one document per user flow, its issuer the tenant's (not the policy's).
func (s *Server) metadataB2C(req request) map[string]any {
	base := s.URL + "/" + req.segment + "/" + req.policy
	return map[string]any{
		"issuer":                                req.tenant.issuer(),
		"authorization_endpoint":                base + "/oauth2/v2.0/authorize",
		"token_endpoint":                        base + "/oauth2/v2.0/token",
		"end_session_endpoint":                  base + "/oauth2/v2.0/logout",
		"jwks_uri":                              base + "/discovery/v2.0/keys",
		"response_modes_supported":              []string{"query", "fragment", "form_post"},
		"response_types_supported":              []string{"code", "code id_token", "code token", "code id_token token", "id_token", "id_token token", "token", "token id_token"},
		"scopes_supported":                      []string{"openid"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "client_secret_basic"},
		"claims_supported":                      []string{"name", "emails", "idp", "oid", "sub", "tfp", "iss", "iat", "exp", "aud", "acr", "nonce", "auth_time"},
	}
}

func entraError(code, description string) map[string]any {
	return map[string]any{
		"error":             code,
		"error_description": description,
		"error_codes":       []int{},
		"timestamp":         time.Now().UTC().Format("2006-01-02 15:04:05Z"),
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
