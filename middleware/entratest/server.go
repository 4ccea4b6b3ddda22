package entratest

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Endpoint names the documents a Server serves, for faults and counts.
// Values combine with |.
type Endpoint uint8

const (
	MetadataV2 Endpoint = 1 << iota // {tenant}/v2.0/.well-known/openid-configuration
	MetadataV1                      // {tenant}/.well-known/openid-configuration
	KeysV2                          // {tenant}/discovery/v2.0/keys
	KeysV1                          // {tenant}/discovery/keys

	Metadata = MetadataV1 | MetadataV2
	Keys     = KeysV1 | KeysV2
	All      = Metadata | Keys
)

var endpoints = []Endpoint{MetadataV2, MetadataV1, KeysV2, KeysV1}

var endpointNames = map[Endpoint]string{MetadataV2: "MetadataV2", MetadataV1: "MetadataV1", KeysV2: "KeysV2", KeysV1: "KeysV1"}

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
	// URL is the authority host, e.g. http://127.0.0.1:53211. Use it as
	// middleware.Config.AuthorityHost.
	URL string

	srv     *httptest.Server
	closing chan struct{}
	once    sync.Once

	mu        sync.Mutex
	tenants   map[string]*Tenant
	published []*Key
	signing   *Key
	nextKey   int
	faults    map[Endpoint]Fault
	delays    map[Endpoint]time.Duration
	counts    map[Endpoint]*atomic.Int64
	extra     *http.ServeMux
}

// NewServer starts a Server on a random loopback port. Call Close when done;
// in tests, NewTenant does that for you.
func NewServer() *Server {
	s, err := Start("127.0.0.1:0")
	if err != nil {
		panic("entratest: " + err.Error())
	}
	return s
}

// Start starts a Server listening on addr, which must be a loopback address
// such as 127.0.0.1:9999 or localhost:9999 (the fake tenant is for tests
// and local development only).
func Start(addr string) (*Server, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if ip := net.ParseIP(host); !(host == "localhost" || (ip != nil && ip.IsLoopback())) {
		return nil, fmt.Errorf("entratest: %q is not a loopback address", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &Server{
		closing: make(chan struct{}),
		tenants: map[string]*Tenant{},
		faults:  map[Endpoint]Fault{},
		delays:  map[Endpoint]time.Duration{},
		counts:  map[Endpoint]*atomic.Int64{},
		extra:   http.NewServeMux(),
	}
	for _, e := range endpoints {
		s.counts[e] = &atomic.Int64{}
	}
	s.signing = s.NewKey()
	s.published = []*Key{s.signing}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.srv.Listener.Close()
	s.srv.Listener = ln
	s.srv.Start()
	s.URL = s.srv.URL
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
// unknown kid, until PublishKey. Keys come from a pre-generated pool.
func (s *Server) NewKey() *Key {
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

// RetireKey removes k from the key sets. Tokens it signed then fail.
func (s *Server) RetireKey(k *Key) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.published = slices.DeleteFunc(s.published, func(p *Key) bool { return p == k })
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

// Tenant returns the tenant with the given ID, or nil.
func (s *Server) Tenant(id string) *Tenant {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tenants[strings.ToLower(id)]
}

const (
	commonTenant        = "common"
	organizationsTenant = "organizations"
	tenantTemplate      = "{tenantid}"
)

// Handle adds a route of the caller's own to the server, e.g. a token
// minting endpoint for local development. Tenant routes keep precedence for
// the paths Entra uses.
func (s *Server) Handle(pattern string, h http.Handler) { s.extra.Handle(pattern, h) }

// serve routes /{tenant}/... like login.microsoftonline.com does.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	tenantSeg, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	var endpoint Endpoint
	switch rest {
	case "v2.0/.well-known/openid-configuration":
		endpoint = MetadataV2
	case ".well-known/openid-configuration":
		endpoint = MetadataV1
	case "discovery/v2.0/keys":
		endpoint = KeysV2
	case "discovery/keys":
		endpoint = KeysV1
	default:
		if h, pattern := s.extra.Handler(r); pattern != "" {
			h.ServeHTTP(w, r)
			return
		}
		writeJSON(w, http.StatusNotFound, entraError("not_found", "This fake tenant serves only OpenID metadata and signing keys."))
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeJSON(w, http.StatusMethodNotAllowed, entraError("invalid_request", "AADSTS900561: The endpoint only accepts GET requests."))
		return
	}
	s.counts[endpoint].Add(1)

	tenantID := strings.ToLower(tenantSeg)
	multi := tenantID == commonTenant || tenantID == organizationsTenant
	s.mu.Lock()
	_, known := s.tenants[tenantID]
	fault, delay := s.faults[endpoint], s.delays[endpoint]
	published := slices.Clone(s.published)
	s.mu.Unlock()
	if !known && !multi {
		writeJSON(w, http.StatusBadRequest, entraError("invalid_tenant",
			fmt.Sprintf("AADSTS90002: Tenant '%s' not found.", tenantSeg)))
		return
	}

	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		case <-s.closing:
			return
		}
	}
	switch fault {
	case Unavailable:
		writeJSON(w, http.StatusServiceUnavailable, entraError("temporarily_unavailable", "AADSTS90033: A transient error has occurred."))
		return
	case ServerError:
		writeJSON(w, http.StatusInternalServerError, entraError("server_error", "AADSTS90000: internal error."))
		return
	case Hang:
		select {
		case <-r.Context().Done():
		case <-s.closing:
		}
		return
	case Garbage:
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("<html><body>Sorry, but we're having trouble signing you in.</body></html>"))
		return
	case Huge:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(`{"keys":[],"padding":"`))
		chunk := []byte(strings.Repeat("A", 64<<10))
		for range 256 {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
		_, _ = w.Write([]byte(`"}`))
		return
	}

	tid := tenantID
	if multi {
		tid = tenantTemplate
	}
	switch endpoint {
	case MetadataV2:
		writeJSON(w, http.StatusOK, s.metadataV2(tenantSeg, tid, r.URL.RawQuery))
	case MetadataV1:
		writeJSON(w, http.StatusOK, s.metadataV1(tenantSeg, tid, r.URL.RawQuery))
	case KeysV2, KeysV1:
		keys := []map[string]any{}
		if fault != EmptyKeySet {
			for _, k := range published {
				issuer := ""
				if endpoint == KeysV2 {
					issuer = s.URL + "/" + tid + "/v2.0"
				}
				keys = append(keys, k.jwk(issuer))
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{"keys": keys})
	}
}

// metadataV2 mirrors Entra's v2.0 OpenID configuration document.
func (s *Server) metadataV2(tenantSeg, tid, query string) map[string]any {
	base := s.URL + "/" + tenantSeg
	jwks := base + "/discovery/v2.0/keys"
	if query != "" {
		jwks += "?" + query
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
		"issuer":                                s.URL + "/" + tid + "/v2.0",
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
func (s *Server) metadataV1(tenantSeg, tid, query string) map[string]any {
	base := s.URL + "/" + tenantSeg
	jwks := s.URL + "/common/discovery/keys"
	if query != "" {
		jwks = base + "/discovery/keys?" + query
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
		"issuer":                                "https://sts.windows.net/" + tid + "/",
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
