package middleware

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Defaults applied to zero-valued Config fields.
const (
	// DefaultLeeway is Microsoft.IdentityModel's default clock skew.
	DefaultLeeway = 5 * time.Minute
	// DefaultKeyRefreshInterval is how often metadata and signing keys are
	// re-read while everything works. Entra announces new keys well before
	// signing with them; Microsoft suggests checking at least daily.
	DefaultKeyRefreshInterval = time.Hour
	// DefaultKeyMissRefreshInterval is the minimum time between two key-set
	// fetches triggered by tokens with an unknown key ID (or by requests
	// arriving while no keys are loaded).
	DefaultKeyMissRefreshInterval = 5 * time.Second
	// DefaultFetchTimeout bounds each metadata or key-set request.
	DefaultFetchTimeout = 5 * time.Second
	// DefaultMaxTokenSize caps the bearer token length. Entra access tokens
	// are 1-3 KiB, up to about 12 KiB with many groups before overage.
	DefaultMaxTokenSize = 16 << 10
	// DefaultTokenCacheSize is how many verified tokens are remembered.
	DefaultTokenCacheSize = 4096
)

// Floors and ceilings of Config durations. A value outside them is a
// configuration error, not silently corrected: KeyRefreshInterval: 60 is
// 60 nanoseconds, a typo for a minute that would hammer Entra.
const (
	minFetchTimeout     = 100 * time.Millisecond
	minRefreshInterval  = time.Second // Microsoft.IdentityModel's MinimumRefreshInterval
	minLeeway           = time.Second // a positive Leeway below it is a typo: Leeway: 300 is 300 ns
	maxLeeway           = time.Hour
	minMaxTokenSize     = 1 << 10 // an RS256 signature alone is 342 bytes; no Entra token is smaller
	tokenCacheEntryCost = 4 << 10 // bytes of budget per TokenCacheSize entry
)

// graphAudiences are Microsoft Graph's application ID and its hosts in
// each cloud: a token with one of these audiences is for Graph, sent to the
// wrong API. They are refused with ErrGraphToken.
var graphAudiences = map[string]bool{
	"00000003-0000-0000-c000-000000000000":    true,
	"https://graph.microsoft.com":             true,
	"https://graph.microsoft.us":              true,
	"https://dod-graph.microsoft.us":          true,
	"https://microsoftgraph.chinacloudapi.cn": true,
	"https://canary.graph.microsoft.com":      true,
}

// TokenVersions selects which Entra access token versions an API accepts.
// The version a client receives is set by the API registration's
// accessTokenAcceptedVersion, not by the endpoint the client used.
type TokenVersions uint8

// Token version flags. The zero value accepts both.
const (
	TokenV1 TokenVersions = 1 << iota
	TokenV2
	AllTokenVersions = TokenV1 | TokenV2
)

// Config configures an Authenticator. Zero values are safe defaults; only
// ClientID and either TenantID or Authorities are required.
type Config struct {
	// TenantID is the directory (tenant) ID of the API's registration (a
	// GUID), or one of the tenant's verified domains (contoso.com,
	// contoso.onmicrosoft.com). Only tokens issued by this tenant are
	// accepted. It is shorthand for Authorities:
	// []Authority{EntraTenant(TenantID).WithHost(AuthorityHost)}.
	TenantID string

	// ClientID is the application (client) ID of the API's registration.
	ClientID string

	// Authorities lists the issuers whose tokens are accepted, when there is
	// more than one single tenant: EntraMultiTenant for a multi-tenant API,
	// ExternalIDTenant, B2CTenant, or several of any kind (staff through a
	// workforce tenant and customers through an External ID tenant; two
	// tenants during a migration). A token is routed by its iss to the one
	// authority that issued it and accepted only if that authority accepts
	// it. Set either TenantID or Authorities, not both.
	Authorities []Authority

	// Audiences lists the accepted aud values. Default: ClientID and
	// api://ClientID, the forms v2 and v1 tokens carry. Set it to replace both,
	// e.g. when the API's App ID URI is a custom https URI.
	Audiences []string

	// AuthorityHost is the Entra authority of TenantID, default
	// DefaultAuthorityHost. Set it for a sovereign cloud
	// (AuthorityHostUSGovernment, AuthorityHostChina) or to a loopback test
	// tenant (plain http is accepted only for loopback hosts).
	AuthorityHost string

	// TokenVersions selects the accepted token versions of Entra
	// authorities. Zero accepts v1 and v2. External ID issues v2 only; B2C
	// tokens are accepted whatever their ver.
	TokenVersions TokenVersions

	// Issuers, when set with TenantID, replaces the issuers announced by the
	// tenant's metadata documents. A "{tenantid}" placeholder is filled from
	// the token's tid claim. Issuers ending in /v2.0 are v2 issuers; others
	// v1.
	Issuers []string

	// AppSpecificSigningKeys reads the signing keys Entra keeps for this
	// application alone (metadata with ?appid=ClientID), needed when the app
	// registration uses a custom signing key, e.g. for claims mapping.
	// It applies to Entra and External ID authorities.
	AppSpecificSigningKeys bool

	// Leeway is the allowed clock skew for exp, nbf and iat. Zero means
	// DefaultLeeway; a negative value means none (tokens are checked
	// against the clock exactly); otherwise between 1 s and 1 h.
	Leeway time.Duration

	// Scopes and Roles are required for every request. A token passes when it
	// carries any of Scopes (delegated, scp) or any of Roles (app roles),
	// exactly like Microsoft.Identity.Web's RequiredScopeOrAppPermission. Set
	// only Scopes to refuse app-only tokens, only Roles to refuse delegated
	// ones. Per-route requirements are the Require* middleware.
	Scopes []string
	Roles  []string

	// AllowTokensWithoutScopesOrRoles accepts tokens that carry neither scp
	// nor roles. By default they are refused, as Microsoft.Identity.Web does:
	// such a token comes from a tenant or app that was never granted access
	// to the API. Set it only when authorization is done some other way (an
	// access control list on oid/tid). ID tokens are refused either way.
	AllowTokensWithoutScopesOrRoles bool

	// DenyGuestUsers refuses tokens of guest (B2B) users of Entra tenants,
	// with 403: users whose acct claim is 1, or whose idp names another
	// tenant or identity provider than the token's tid.
	DenyGuestUsers bool

	// Realm, when set, is sent as the realm parameter of WWW-Authenticate.
	Realm string

	// ErrorHandler writes the response for a refused request. The default,
	// WriteError, sends the RFC 6750 status, WWW-Authenticate header and a
	// small JSON body. A custom handler gets the typed error.
	ErrorHandler func(w http.ResponseWriter, r *http.Request, err *Error)

	// Logger receives, at Info, one record per refused request (reason and
	// claims, never the token), at Debug requests without a token, and at
	// Warn failed metadata or key loads. Default: refusals are not logged,
	// and load failures go to slog.Default(), so that a service that set no
	// logger still says when it cannot reach Entra.
	Logger *slog.Logger

	// HTTPClient fetches metadata and keys. Default: a client of its own.
	// A client given here is copied, not changed; every URL fetched with it,
	// redirects included, must be https (plain http only for loopback).
	HTTPClient *http.Client

	// FetchTimeout bounds each metadata or key-set HTTP request. A load is
	// two requests (metadata, then keys), so New and a request waiting for
	// keys wait at most about twice this. Default DefaultFetchTimeout; at
	// least 100 ms.
	FetchTimeout time.Duration

	// KeyRefreshInterval is the periodic refresh of metadata and keys.
	// Default DefaultKeyRefreshInterval; at least 1 s.
	KeyRefreshInterval time.Duration

	// KeyMissRefreshInterval is the minimum time between two loads of one
	// metadata document and key set, whatever triggers them (unknown key
	// IDs, retries, the periodic refresh). Default
	// DefaultKeyMissRefreshInterval; at least 1 s.
	KeyMissRefreshInterval time.Duration

	// MaxTokenSize caps the token length in bytes. Default
	// DefaultMaxTokenSize; at least 1 KiB, which no Entra token is below.
	MaxTokenSize int

	// TokenCacheSize is how many verified tokens are remembered, so that a
	// token seen again skips its signature check (it is re-checked for time,
	// key, tenant and permissions on every request). Default
	// DefaultTokenCacheSize; a negative value turns the cache off. The
	// cache also holds at most TokenCacheSize × 4 KiB of tokens and claims.
	TokenCacheSize int

	// Now is the clock, for tests. Default time.Now.
	Now func() time.Time
}

// ErrInvalidConfig is wrapped by every configuration error New returns.
var ErrInvalidConfig = errors.New("entragate: invalid configuration")

var guidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

func isGUID(s string) bool { return len(s) == 36 && guidPattern.MatchString(s) }

// settings is a Config with defaults applied and values checked. Slices
// are copies: nothing the caller holds can change a rule later.
type settings struct {
	Config
	authorities []Authority
	audiences   map[string]struct{} // each accepted aud, with and without one trailing slash
	leeway      time.Duration
	logger      *slog.Logger // refusals
	opsLogger   *slog.Logger // key loads
	now         func() time.Time
	client      *http.Client
	ownClient   bool
	cacheSize   int
}

func configError(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
}

func newSettings(cfg Config) (*settings, error) {
	s := &settings{Config: cfg}
	s.Audiences = slices.Clone(cfg.Audiences)
	s.Issuers = slices.Clone(cfg.Issuers)
	s.Scopes = slices.Clone(cfg.Scopes)
	s.Roles = slices.Clone(cfg.Roles)
	s.Authorities = slices.Clone(cfg.Authorities)

	switch {
	case cfg.ClientID == "":
		return nil, configError("ClientID is required (the application ID of the API's app registration)")
	case !isGUID(cfg.ClientID):
		return nil, configError("ClientID %q is not a GUID", cfg.ClientID)
	}
	s.ClientID = strings.ToLower(cfg.ClientID)

	if cfg.TokenVersions&^AllTokenVersions != 0 {
		return nil, configError("TokenVersions has unknown bits %#x", uint8(cfg.TokenVersions))
	}
	if cfg.TokenVersions == 0 {
		s.TokenVersions = AllTokenVersions
	}
	if err := s.checkAuthorities(); err != nil {
		return nil, err
	}

	audiences := s.Audiences
	if len(audiences) == 0 {
		audiences = []string{s.ClientID, "api://" + s.ClientID}
	}
	s.audiences = make(map[string]struct{}, 3*len(audiences))
	for _, aud := range audiences {
		if strings.TrimSpace(aud) == "" {
			return nil, configError("Audiences contains an empty value")
		}
		// Microsoft.IdentityModel ignores one trailing slash on either side
		// (IgnoreTrailingSlashWhenValidatingAudience); nothing else differs.
		s.audiences[aud] = struct{}{}
		s.audiences[aud+"/"] = struct{}{}
		if trimmed, ok := strings.CutSuffix(aud, "/"); ok {
			s.audiences[trimmed] = struct{}{}
		}
	}
	for _, iss := range s.Issuers {
		// A template names the tenant in the host, too (External ID).
		if u, err := url.Parse(strings.ReplaceAll(iss, tenantPlaceholder, "00000000-0000-0000-0000-000000000000")); err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
			return nil, configError("Issuers: %q is not an http(s) URL", iss)
		}
	}
	for _, list := range [][]string{s.Scopes, s.Roles} {
		for _, v := range list {
			if !validName(v) {
				return nil, configError("scope and role names must be non-empty and contain no spaces, quotes or backslashes: %q", v)
			}
		}
	}
	for _, v := range s.Scopes {
		if msg := scopeURIMistake(v); msg != "" {
			return nil, configError("Scopes: %s", msg)
		}
	}

	switch {
	case cfg.Leeway == 0:
		s.leeway = DefaultLeeway
	case cfg.Leeway > maxLeeway:
		return nil, configError("Leeway %v is above the %v maximum: tokens that long expired are not valid", cfg.Leeway, maxLeeway)
	case cfg.Leeway > 0 && cfg.Leeway < minLeeway:
		return nil, configError("Leeway %v (%d ns) is below the %v minimum; a negative Leeway means none", cfg.Leeway, int64(cfg.Leeway), minLeeway)
	case cfg.Leeway > 0:
		s.leeway = cfg.Leeway
	}
	for _, d := range []struct {
		name  string
		value *time.Duration
		def   time.Duration
		floor time.Duration
	}{
		{"FetchTimeout", &s.FetchTimeout, DefaultFetchTimeout, minFetchTimeout},
		{"KeyRefreshInterval", &s.KeyRefreshInterval, DefaultKeyRefreshInterval, minRefreshInterval},
		{"KeyMissRefreshInterval", &s.KeyMissRefreshInterval, DefaultKeyMissRefreshInterval, minRefreshInterval},
	} {
		switch {
		case *d.value == 0:
			*d.value = d.def
		case *d.value < d.floor:
			return nil, configError("%s %v (%d ns) is below the %v minimum", d.name, *d.value, int64(*d.value), d.floor)
		}
	}
	switch {
	case s.MaxTokenSize == 0:
		s.MaxTokenSize = DefaultMaxTokenSize
	case s.MaxTokenSize < minMaxTokenSize:
		return nil, configError("MaxTokenSize %d is below the %d-byte minimum: no Entra token is that small", s.MaxTokenSize, minMaxTokenSize)
	}
	switch {
	case s.TokenCacheSize == 0:
		s.cacheSize = DefaultTokenCacheSize
	case s.TokenCacheSize > 0:
		s.cacheSize = s.TokenCacheSize
	}
	s.logger = cfg.Logger
	s.opsLogger = cfg.Logger
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
		s.opsLogger = slog.Default()
	}
	s.now = cfg.Now
	if s.now == nil {
		s.now = time.Now
	}
	s.client = fetchClient(cfg.HTTPClient)
	s.ownClient = cfg.HTTPClient == nil
	if s.ErrorHandler == nil {
		s.ErrorHandler = WriteError
	}
	return s, nil
}

// checkAuthorities turns TenantID (or Authorities) into the authority list.
func (s *settings) checkAuthorities() error {
	if len(s.Authorities) > 0 {
		switch {
		case s.TenantID != "":
			return configError("set either TenantID or Authorities, not both")
		case s.AuthorityHost != "":
			return configError("AuthorityHost is the host of TenantID; with Authorities, give each authority its host with WithHost")
		case len(s.Issuers) > 0:
			return configError("Issuers replaces the issuers of TenantID's metadata; it cannot be combined with Authorities")
		}
		s.authorities = s.Authorities
	} else {
		switch tenant := strings.ToLower(s.TenantID); {
		case tenant == "":
			return configError("TenantID is required (the directory ID of the API's app registration), or Authorities")
		case tenant == Organizations || tenant == Common:
			return configError("TenantID %q is multi-tenant: use Authorities: []Authority{EntraMultiTenant(%q, TenantAdmission{...})} to say which tenants are admitted", s.TenantID, tenant)
		}
		host := s.AuthorityHost
		if host == "" {
			host = DefaultAuthorityHost
		}
		s.authorities = []Authority{EntraTenant(s.TenantID).WithHost(host)}
	}
	seen := map[string]bool{}
	for i, a := range s.authorities {
		if err := a.check(); err != nil {
			return configError("%v", err)
		}
		if routedVersions(a.sources(s.TokenVersions, "")) == 0 {
			return configError("authority %s issues no token version that TokenVersions accepts", a)
		}
		if seen[a.String()] {
			return configError("authority %s is listed twice", a)
		}
		seen[a.String()] = true
		if a.kind == kindEntraMultiTenant {
			// organizations and common announce the same issuer templates:
			// which admission rule applied would depend on the list order.
			if seen["multi|"+a.host] {
				return configError("EntraMultiTenant(%q) overlaps another multi-tenant authority on %s: they announce the same issuers; list one, with one TenantAdmission", a.tenant, a.host)
			}
			seen["multi|"+a.host] = true
		}
		s.authorities[i] = a
	}
	return nil
}

func validName(v string) bool { return v != "" && !strings.ContainsAny(v, " \t\"\\") }

// scopeURIMistake explains why a full scope URI (api://<app-id>/Orders.Read,
// https://graph.microsoft.com/User.Read) cannot be required: a client
// requests the URI, but scp carries the bare name, so every real token
// would be refused. "" when v is a bare name.
func scopeURIMistake(v string) string {
	if !strings.Contains(v, "://") && !strings.HasPrefix(v, "api:") {
		return ""
	}
	bare := v[strings.LastIndexByte(v, '/')+1:]
	return fmt.Sprintf("%q is a full scope URI, but tokens carry the bare scope name in scp: require %q", v, bare)
}

// parseFetchURL accepts https URLs, and http URLs only for loopback hosts:
// keys fetched over plain http from elsewhere could be replaced in transit.
func parseFetchURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("%q is not an absolute URL", raw)
	}
	switch u.Scheme {
	case "https":
		return u, nil
	case "http":
		if isLoopback(u.Hostname()) {
			return u, nil
		}
		return nil, fmt.Errorf("%q uses plain http, which is accepted only for loopback hosts", raw)
	}
	return nil, fmt.Errorf("%q must use https", raw)
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
