package middleware

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// DefaultAuthorityHost is the Entra ID authority of Azure's public cloud.
const DefaultAuthorityHost = "https://login.microsoftonline.com"

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
)

// Graph audiences: tokens for Microsoft Graph that a client sends to the
// wrong API. They are refused with ErrGraphToken.
const (
	graphAppID  = "00000003-0000-0000-c000-000000000000"
	graphAppURI = "https://graph.microsoft.com"
)

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
// TenantID and ClientID are required.
type Config struct {
	// TenantID is the directory (tenant) ID of the API's registration, a GUID.
	// Only tokens issued by this tenant are accepted.
	TenantID string

	// ClientID is the application (client) ID of the API's registration.
	ClientID string

	// Audiences lists the accepted aud values. Default: ClientID and
	// api://ClientID, the forms v2 and v1 tokens carry. Set it to replace both,
	// e.g. when the API's App ID URI is a custom https URI.
	Audiences []string

	// AuthorityHost is the Entra authority, default DefaultAuthorityHost.
	// Set it for a sovereign cloud (https://login.microsoftonline.us,
	// https://login.partner.microsoftonline.cn) or to a loopback test tenant
	// (plain http is accepted only for loopback hosts).
	AuthorityHost string

	// TokenVersions selects the accepted token versions. Zero accepts v1 and v2.
	TokenVersions TokenVersions

	// Issuers, when set, replaces the issuers announced by the tenant's
	// metadata documents. A "{tenantid}" placeholder is filled from the
	// token's tid claim. Issuers ending in /v2.0 are v2 issuers; others v1.
	Issuers []string

	// AppSpecificSigningKeys reads the signing keys Entra keeps for this
	// application alone (metadata with ?appid=ClientID), needed when the app
	// registration uses a custom signing key, e.g. for claims mapping.
	AppSpecificSigningKeys bool

	// Leeway is the allowed clock skew for exp, nbf and iat. Zero means
	// DefaultLeeway; a negative value means none.
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
	// such a token is an ID token, or comes from a tenant or app that was
	// never granted access to the API. Set it only when authorization is done
	// some other way (an access control list on oid/tid).
	AllowTokensWithoutScopesOrRoles bool

	// Realm, when set, is sent as the realm parameter of WWW-Authenticate.
	Realm string

	// ErrorHandler writes the response for a refused request. The default,
	// WriteError, sends the RFC 6750 status, WWW-Authenticate header and a
	// small JSON body. A custom handler gets the typed error.
	ErrorHandler func(w http.ResponseWriter, r *http.Request, err *Error)

	// Logger receives one record per refused request (reason and safe
	// claims, never the token) and key-refresh problems. Default: discard.
	Logger *slog.Logger

	// HTTPClient fetches metadata and keys. Default: a client of its own.
	HTTPClient *http.Client

	// FetchTimeout bounds each metadata or key-set request, and so how long
	// a request waits for keys. Default DefaultFetchTimeout.
	FetchTimeout time.Duration

	// KeyRefreshInterval is the periodic refresh of metadata and keys.
	// Default DefaultKeyRefreshInterval.
	KeyRefreshInterval time.Duration

	// KeyMissRefreshInterval is the minimum time between key-set fetches
	// caused by unknown key IDs. Default DefaultKeyMissRefreshInterval.
	KeyMissRefreshInterval time.Duration

	// MaxTokenSize caps the token length in bytes. Default DefaultMaxTokenSize.
	MaxTokenSize int

	// Now is the clock, for tests. Default time.Now.
	Now func() time.Time
}

// ErrInvalidConfig is wrapped by every configuration error New returns.
var ErrInvalidConfig = errors.New("entragate: invalid configuration")

var guidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

func isGUID(s string) bool { return len(s) == 36 && guidPattern.MatchString(s) }

// settings is a Config with defaults applied and values checked.
type settings struct {
	Config
	authority *url.URL
	audiences []string
	leeway    time.Duration
	logger    *slog.Logger
	now       func() time.Time
	ownClient bool
}

func configError(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
}

func newSettings(cfg Config) (*settings, error) {
	s := &settings{Config: cfg}
	switch {
	case cfg.TenantID == "":
		return nil, configError("TenantID is required (the directory ID of the API's app registration)")
	case !isGUID(cfg.TenantID):
		return nil, configError("TenantID %q is not a GUID", cfg.TenantID)
	case cfg.ClientID == "":
		return nil, configError("ClientID is required (the application ID of the API's app registration)")
	case !isGUID(cfg.ClientID):
		return nil, configError("ClientID %q is not a GUID", cfg.ClientID)
	}
	s.TenantID = strings.ToLower(cfg.TenantID)
	s.ClientID = strings.ToLower(cfg.ClientID)

	host := cfg.AuthorityHost
	if host == "" {
		host = DefaultAuthorityHost
	}
	u, err := parseFetchURL(strings.TrimRight(host, "/"))
	if err != nil {
		return nil, configError("AuthorityHost: %v", err)
	}
	if u.Path != "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, configError("AuthorityHost %q must be a scheme and host only, like %s", host, DefaultAuthorityHost)
	}
	s.authority = u

	if cfg.TokenVersions&^AllTokenVersions != 0 {
		return nil, configError("TokenVersions has unknown bits %#x", uint8(cfg.TokenVersions))
	}
	if cfg.TokenVersions == 0 {
		s.TokenVersions = AllTokenVersions
	}

	s.audiences = cfg.Audiences
	if len(s.audiences) == 0 {
		s.audiences = []string{s.ClientID, "api://" + s.ClientID}
	}
	for _, aud := range s.audiences {
		if strings.TrimSpace(aud) == "" {
			return nil, configError("Audiences contains an empty value")
		}
	}
	for _, iss := range cfg.Issuers {
		if _, err := url.Parse(iss); err != nil || !strings.HasPrefix(iss, "http") {
			return nil, configError("Issuers: %q is not an http(s) URL", iss)
		}
	}
	for _, list := range [][]string{cfg.Scopes, cfg.Roles} {
		for _, v := range list {
			if v == "" || strings.ContainsAny(v, " \t\"\\") {
				return nil, configError("scope and role names must be non-empty and contain no spaces, quotes or backslashes: %q", v)
			}
		}
	}

	switch {
	case cfg.Leeway == 0:
		s.leeway = DefaultLeeway
	case cfg.Leeway > 0:
		s.leeway = cfg.Leeway
	}
	if s.FetchTimeout <= 0 {
		s.FetchTimeout = DefaultFetchTimeout
	}
	if s.KeyRefreshInterval <= 0 {
		s.KeyRefreshInterval = DefaultKeyRefreshInterval
	}
	if s.KeyMissRefreshInterval <= 0 {
		s.KeyMissRefreshInterval = DefaultKeyMissRefreshInterval
	}
	if s.MaxTokenSize <= 0 {
		s.MaxTokenSize = DefaultMaxTokenSize
	}
	s.logger = cfg.Logger
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	s.now = cfg.Now
	if s.now == nil {
		s.now = time.Now
	}
	if s.HTTPClient == nil {
		s.HTTPClient = &http.Client{
			Transport:     http.DefaultTransport.(*http.Transport).Clone(),
			CheckRedirect: httpClientCheck,
		}
		s.ownClient = true
	}
	if s.ErrorHandler == nil {
		s.ErrorHandler = WriteError
	}
	return s, nil
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
