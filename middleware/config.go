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

// Defaults applied to zero-valued configuration fields.
const (
	// DefaultLeeway is Microsoft.IdentityModel's default clock skew.
	DefaultLeeway = 5 * time.Minute
	// DefaultKeyRefreshInterval is how often metadata and signing keys are
	// re-read while everything works. Entra announces new keys well before
	// signing with them; Microsoft suggests checking at least daily.
	DefaultKeyRefreshInterval = time.Hour
	// DefaultMinLoadInterval is the minimum time between two loads of one
	// metadata document and its key set, whatever triggers them: tokens
	// with an unknown key ID, retries after a failure, the periodic
	// refresh.
	DefaultMinLoadInterval = 5 * time.Second
	// DefaultFetchTimeout bounds each metadata or key-set request.
	DefaultFetchTimeout = 5 * time.Second
	// DefaultMaxTokenSize caps the bearer token length. Entra access tokens
	// are 1-3 KiB, up to about 12 KiB with many groups before overage.
	DefaultMaxTokenSize = 16 << 10
	// DefaultTokenCacheSize is how many verified tokens are remembered.
	DefaultTokenCacheSize = 4096
)

// Floors and ceilings of the durations and sizes. A value outside them is
// a configuration error, not silently corrected: KeyRefreshInterval: 60 is
// 60 nanoseconds, a typo for a minute that would hammer Entra.
const (
	minFetchTimeout     = 100 * time.Millisecond
	minRefreshInterval  = time.Second // Microsoft.IdentityModel's MinimumRefreshInterval
	minLeeway           = time.Second // a positive Leeway below it is a typo: Leeway: 300 is 300 ns
	maxLeeway           = time.Hour
	minMaxTokenSize     = 1 << 10 // an RS256 signature alone is 342 bytes; no Entra token is smaller
	tokenCacheEntryCost = 4 << 10 // bytes of budget per TokenCacheSize entry
	// maxTokenCacheSize caps TokenCacheSize: 4 GiB of tokens and claims.
	maxTokenCacheSize = 1 << 20
)

// Config is what New needs for the common case: one API, its authorities,
// and how its refusals are answered. Zero values are safe defaults; only
// ClientID and either TenantID or Authorities are required.
//
// New splits it into a ProviderConfig (where tokens come from) and an
// APIConfig (what this API accepts); build those yourself to share one
// Provider between several APIs, or with a web app's IDTokenVerifier.
type Config struct {
	// TenantID is the directory (tenant) ID of the API's registration (a
	// GUID), or one of the tenant's verified domains (contoso.com,
	// contoso.onmicrosoft.com): shorthand for
	// Authorities: []Authority{EntraTenant(TenantID)}. Only that tenant's
	// tokens are accepted.
	TenantID string

	// ClientID is the application (client) ID of the API's registration.
	ClientID string

	// Authorities lists the issuers whose tokens are accepted, when
	// TenantID does not say it: an authority in another cloud
	// (EntraTenant(t).WithHost(AuthorityHostUSGovernment)), EntraMultiTenant
	// for a multi-tenant API, ExternalIDTenant, B2CTenant, or several of
	// any kind (staff through a workforce tenant and customers through an
	// External ID tenant; two tenants during a migration). A token is
	// routed by its iss to the one authority that issued it and accepted
	// only if that authority accepts it. Set either TenantID or
	// Authorities, not both.
	Authorities []Authority

	// Audiences lists the accepted aud values. Default: ClientID and
	// api://ClientID, the forms v2 and v1 tokens carry. Set it to replace
	// both, e.g. when the API's App ID URI is a custom https URI.
	Audiences []string

	// Scopes and Roles are required for every request. A token passes when
	// it carries any of Scopes (delegated, scp) or any of Roles (app
	// roles), exactly like Microsoft.Identity.Web's
	// RequiredScopeOrAppPermission. Set only Scopes to refuse app-only
	// tokens, only Roles to refuse delegated ones. Scopes are bare names
	// (Orders.Read), as scp carries them, not the URIs clients request.
	// Per-route requirements are Rules and the Require* middleware.
	Scopes []string
	Roles  []string

	// AllowTokensWithoutScopesOrRoles accepts tokens that carry neither scp
	// nor roles. By default they are refused, as Microsoft.Identity.Web
	// does: such a token comes from a tenant or app that was never granted
	// access to the API. Set it only when authorization is done some other
	// way (an access control list on oid/tid). ID tokens are refused either
	// way.
	AllowTokensWithoutScopesOrRoles bool

	// DenyGuestUsers refuses tokens of guest (B2B) users of Entra tenants,
	// with 403: users whose acct claim is 1, or whose idp names another
	// tenant or identity provider than the token's tid.
	DenyGuestUsers bool

	// Leeway is the allowed clock skew for exp, nbf and iat. Zero means
	// DefaultLeeway; a negative value means none (tokens are checked
	// against the clock exactly); otherwise between 1 s and 1 h.
	Leeway time.Duration

	// MaxTokenSize caps the token length in bytes. Default
	// DefaultMaxTokenSize; at least 1 KiB, which no Entra token is below.
	MaxTokenSize int

	// TokenCacheSize is how many verified tokens are remembered, so that a
	// token seen again skips its signature check (it is re-checked for
	// time, key, tenant and permissions on every request). Default
	// DefaultTokenCacheSize; a negative value turns the cache off. The
	// cache also holds at most TokenCacheSize × 4 KiB of tokens and claims.
	TokenCacheSize int

	// ChallengeOnlyCapableClients answers a step-up rule's claims
	// challenge (AuthContext, IssuedAfter) only to clients that declared
	// the cp1 capability (xms_cc): others get 403, saying they cannot be
	// asked for a new token, as Microsoft's samples answer them. The API's
	// registration must then request the xms_cc optional claim, or every
	// client looks incapable. By default every client gets the challenge:
	// an RFC 6750 answer that a client unable to act on it treats as any
	// other 401.
	ChallengeOnlyCapableClients bool

	// Realm, when set, is sent as the realm parameter of WWW-Authenticate.
	// A claims challenge names the API's tenant instead (or "" for a
	// multi-tenant API), as Entra has it.
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

	// Observer receives each token decision, document load and admission
	// call, for metrics and traces. Default: none.
	Observer Observer

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

	// MinLoadInterval is the minimum time between two loads of one
	// metadata document and key set, whatever triggers them (tokens with
	// an unknown key ID, retries, the periodic refresh). Default
	// DefaultMinLoadInterval; at least 1 s.
	MinLoadInterval time.Duration

	// Now is the clock, for tests. Default time.Now.
	Now func() time.Time
}

// ProviderConfig configures a Provider: where tokens come from and how
// their metadata and keys are loaded. Its fields mean what Config's of the
// same name do.
type ProviderConfig struct {
	Authorities        []Authority // required
	HTTPClient         *http.Client
	FetchTimeout       time.Duration
	KeyRefreshInterval time.Duration
	MinLoadInterval    time.Duration
	// Logger receives failed loads (Warn).
	Logger *slog.Logger
	// Observer's Load and Admission are called for the Provider's loads
	// and admission calls; its Decision (and IncludeClaims) is the default
	// of the Provider's verifiers whose own config sets no Decision, so
	// that one Observer here sees everything.
	Observer Observer
	Now      func() time.Time
}

// APIConfig configures an Authenticator: what one API accepts and how it
// answers refusals. Its fields mean what Config's of the same name do.
type APIConfig struct {
	ClientID                        string // required
	Audiences                       []string
	Scopes, Roles                   []string
	AllowTokensWithoutScopesOrRoles bool
	DenyGuestUsers                  bool
	Leeway                          time.Duration
	MaxTokenSize                    int
	TokenCacheSize                  int
	ChallengeOnlyCapableClients     bool
	Realm                           string
	ErrorHandler                    func(w http.ResponseWriter, r *http.Request, err *Error)
	// Logger receives refusals.
	Logger *slog.Logger
	// Observer's Decision is called for each decision (default: the
	// Provider's). Load and Admission are the Provider's own events: set
	// them in ProviderConfig.Observer; here they are a configuration
	// error.
	Observer Observer
}

// split is what New does with a Config.
func (c Config) split() (ProviderConfig, APIConfig, error) {
	authorities := c.Authorities
	switch {
	case c.TenantID != "" && len(c.Authorities) > 0:
		return ProviderConfig{}, APIConfig{}, configError("set either TenantID or Authorities, not both")
	case c.TenantID != "":
		switch tenant := strings.ToLower(c.TenantID); tenant {
		case Organizations, Common:
			return ProviderConfig{}, APIConfig{}, configError("TenantID %q is multi-tenant: use Authorities: []Authority{EntraMultiTenant(%q, TenantAdmission{...})} to say which tenants are admitted", c.TenantID, tenant)
		}
		authorities = []Authority{EntraTenant(c.TenantID)}
	case len(c.Authorities) == 0:
		return ProviderConfig{}, APIConfig{}, configError("TenantID is required (the directory ID of the API's app registration), or Authorities")
	}
	return ProviderConfig{
			Authorities: authorities, HTTPClient: c.HTTPClient, FetchTimeout: c.FetchTimeout,
			KeyRefreshInterval: c.KeyRefreshInterval, MinLoadInterval: c.MinLoadInterval,
			Logger: c.Logger, Observer: Observer{Load: c.Observer.Load, Admission: c.Observer.Admission}, Now: c.Now,
		}, APIConfig{
			ClientID: c.ClientID, Audiences: c.Audiences, Scopes: c.Scopes, Roles: c.Roles,
			AllowTokensWithoutScopesOrRoles: c.AllowTokensWithoutScopesOrRoles, DenyGuestUsers: c.DenyGuestUsers,
			Leeway: c.Leeway, MaxTokenSize: c.MaxTokenSize, TokenCacheSize: c.TokenCacheSize,
			ChallengeOnlyCapableClients: c.ChallengeOnlyCapableClients, Realm: c.Realm,
			ErrorHandler: c.ErrorHandler, Logger: c.Logger,
			Observer: Observer{Decision: c.Observer.Decision, IncludeClaims: c.Observer.IncludeClaims},
		}, nil
}

// ErrInvalidConfig is wrapped by every configuration error New,
// NewProvider, NewAuthenticator and NewIDTokenVerifier return.
var ErrInvalidConfig = errors.New("entragate: invalid configuration")

func configError(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
}

var guidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

func isGUID(s string) bool { return len(s) == 36 && guidPattern.MatchString(s) }

// providerSettings is a checked ProviderConfig with defaults applied; its
// slices are copies, so nothing the caller holds changes a rule later.
type providerSettings struct {
	authorities                                    []Authority
	client                                         *http.Client
	ownClient                                      bool
	fetchTimeout, refreshInterval, minLoadInterval time.Duration
	logger                                         *slog.Logger // load failures
	observer                                       Observer
	now                                            func() time.Time
}

func newProviderSettings(cfg ProviderConfig) (*providerSettings, error) {
	s := &providerSettings{authorities: slices.Clone(cfg.Authorities), observer: cfg.Observer, logger: cfg.Logger, now: cfg.Now}
	if err := checkAuthorities(s.authorities); err != nil {
		return nil, err
	}
	var err error
	if s.fetchTimeout, err = durationOrDefault("FetchTimeout", cfg.FetchTimeout, DefaultFetchTimeout, minFetchTimeout); err != nil {
		return nil, err
	}
	if s.refreshInterval, err = durationOrDefault("KeyRefreshInterval", cfg.KeyRefreshInterval, DefaultKeyRefreshInterval, minRefreshInterval); err != nil {
		return nil, err
	}
	if s.minLoadInterval, err = durationOrDefault("MinLoadInterval", cfg.MinLoadInterval, DefaultMinLoadInterval, minRefreshInterval); err != nil {
		return nil, err
	}
	if s.logger == nil {
		s.logger = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.client = fetchClient(cfg.HTTPClient)
	s.ownClient = cfg.HTTPClient == nil
	return s, nil
}

// durationOrDefault applies a duration's default and floor.
func durationOrDefault(field string, v, def, floor time.Duration) (time.Duration, error) {
	switch {
	case v == 0:
		return def, nil
	case v < floor:
		return 0, configError("%s %v (%d ns) is below the %v minimum", field, v, int64(v), floor)
	}
	return v, nil
}

// checkAuthorities checks each authority, and that no two announce the
// same issuers: which one's rules applied would depend on the list order.
func checkAuthorities(authorities []Authority) error {
	if len(authorities) == 0 {
		return configError("Authorities is required: EntraTenant, EntraMultiTenant, ExternalIDTenant or B2CTenant")
	}
	seen := map[string]string{}
	for i := range authorities {
		a := &authorities[i]
		if err := a.check(); err != nil {
			return configError("%v", err)
		}
		name := a.String()
		if _, dup := seen[name]; dup {
			return configError("authority %s is listed twice", a)
		}
		seen[name] = name
		if key := a.shape.overlap(a); key != "" {
			if other, dup := seen[key]; dup {
				return configError("%s overlaps %s: they announce the same issuers; list one, with one TenantAdmission", a, other)
			}
			seen[key] = name
		}
	}
	return nil
}

// apiSettings is a checked APIConfig with defaults applied.
type apiSettings struct {
	clientID      string
	audiences     map[string]struct{} // each accepted aud, with and without one trailing slash
	required      *Rule               // Scopes and Roles; nil when none
	allowNoScopes bool
	denyGuests    bool
	leeway        time.Duration
	maxTokenSize  int
	cacheSize     int // 0: no cache
	realm         string
	// capableClientsOnly: ChallengeOnlyCapableClients.
	capableClientsOnly bool
	errorHandler       func(http.ResponseWriter, *http.Request, *Error)
	logger             *slog.Logger // refusals
	observer           Observer
}

// checkVerifierObserver refuses the Provider's events on a verifier's
// Observer, where they would never be called.
func checkVerifierObserver(config string, o Observer) error {
	if o.Load != nil || o.Admission != nil {
		return configError("%s.Observer: Load and Admission are called for the Provider's loads and admission calls: set them in ProviderConfig.Observer", config)
	}
	return nil
}

// observerFor is a verifier's Observer: its own Decision, or else the
// Provider's.
func (p *Provider) observerFor(o Observer) Observer {
	if o.Decision == nil {
		return Observer{Decision: p.s.observer.Decision, IncludeClaims: p.s.observer.IncludeClaims}
	}
	return o
}

func newAPISettings(cfg APIConfig) (*apiSettings, error) {
	s := &apiSettings{
		allowNoScopes: cfg.AllowTokensWithoutScopesOrRoles, denyGuests: cfg.DenyGuestUsers,
		realm: cfg.Realm, capableClientsOnly: cfg.ChallengeOnlyCapableClients,
		errorHandler: cfg.ErrorHandler, logger: cfg.Logger, observer: cfg.Observer,
	}
	if err := checkVerifierObserver("APIConfig", cfg.Observer); err != nil {
		return nil, err
	}
	var err error
	if s.clientID, err = checkClientID(cfg.ClientID); err != nil {
		return nil, err
	}
	if s.audiences, err = audienceSet(cfg.Audiences, s.clientID); err != nil {
		return nil, err
	}
	if s.required, err = requiredRule(cfg.Scopes, cfg.Roles); err != nil {
		return nil, err
	}
	if s.leeway, err = checkLeeway(cfg.Leeway); err != nil {
		return nil, err
	}
	if s.maxTokenSize, err = checkMaxTokenSize(cfg.MaxTokenSize); err != nil {
		return nil, err
	}
	switch {
	case cfg.TokenCacheSize == 0:
		s.cacheSize = DefaultTokenCacheSize
	case cfg.TokenCacheSize > maxTokenCacheSize:
		return nil, configError("TokenCacheSize %d is above %d: the cache would hold up to %d GiB", cfg.TokenCacheSize, maxTokenCacheSize, int64(cfg.TokenCacheSize)*tokenCacheEntryCost>>30)
	case cfg.TokenCacheSize > 0:
		s.cacheSize = cfg.TokenCacheSize
	}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	if s.errorHandler == nil {
		s.errorHandler = WriteError
	}
	return s, nil
}

func checkClientID(id string) (string, error) {
	switch {
	case id == "":
		return "", configError("ClientID is required (the application ID of the app's registration)")
	case !isGUID(id):
		return "", configError("ClientID %q is not a GUID", id)
	}
	return strings.ToLower(id), nil
}

// audienceSet is the set of accepted aud values. Microsoft.IdentityModel
// ignores one trailing slash on either side
// (IgnoreTrailingSlashWhenValidatingAudience); nothing else differs.
func audienceSet(audiences []string, clientID string) (map[string]struct{}, error) {
	if len(audiences) == 0 {
		audiences = []string{clientID, "api://" + clientID}
	}
	set := make(map[string]struct{}, 3*len(audiences))
	for _, aud := range audiences {
		if strings.TrimSpace(aud) == "" {
			return nil, configError("Audiences contains an empty value")
		}
		set[aud] = struct{}{}
		set[aud+"/"] = struct{}{}
		if trimmed, ok := strings.CutSuffix(aud, "/"); ok {
			set[trimmed] = struct{}{}
		}
	}
	return set, nil
}

// requiredRule is Config.Scopes and Roles as a rule: any of them.
func requiredRule(scopes, roles []string) (*Rule, error) {
	if len(scopes) == 0 && len(roles) == 0 {
		return nil, nil
	}
	for _, v := range append(slices.Clone(scopes), roles...) {
		if !validName(v) {
			return nil, configError("scope and role names must be non-empty and contain no spaces, quotes or backslashes: %q", v)
		}
	}
	for _, v := range scopes {
		if msg := scopeURIMistake(v); msg != "" {
			return nil, configError("Scopes: %s", msg)
		}
	}
	r := scopeOrRole(slices.Clone(scopes), slices.Clone(roles))
	return &r, nil
}

func checkLeeway(v time.Duration) (time.Duration, error) {
	switch {
	case v == 0:
		return DefaultLeeway, nil
	case v < 0:
		return 0, nil
	case v > maxLeeway:
		return 0, configError("Leeway %v is above the %v maximum: tokens that long expired are not valid", v, maxLeeway)
	case v < minLeeway:
		return 0, configError("Leeway %v (%d ns) is below the %v minimum; a negative Leeway means none", v, int64(v), minLeeway)
	}
	return v, nil
}

func checkMaxTokenSize(v int) (int, error) {
	switch {
	case v == 0:
		return DefaultMaxTokenSize, nil
	case v < minMaxTokenSize:
		return 0, configError("MaxTokenSize %d is below the %d-byte minimum: no Entra token is that small", v, minMaxTokenSize)
	}
	return v, nil
}

func validName(v string) bool { return v != "" && !strings.ContainsAny(v, " \t\"\\") }

// scopeURIMistake explains why a full scope URI (api://<app-id>/Orders.Read,
// https://graph.microsoft.com/User.Read) cannot be required: a client
// requests the URI, but scp carries the bare name, so every real token
// would be refused. "" when v is a bare name.
func scopeURIMistake(v string) string {
	if !strings.Contains(v, "://") && !strings.HasPrefix(strings.ToLower(v), "api:") {
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
