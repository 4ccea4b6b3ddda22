package middleware

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Entra authority hosts of the clouds Microsoft runs. Issuers and keys are
// always read from the metadata the host serves, so a cloud needs only its
// host.
const (
	// DefaultAuthorityHost is Azure's public (global) cloud.
	DefaultAuthorityHost = "https://login.microsoftonline.com"
	// AuthorityHostUSGovernment is Azure US Government.
	AuthorityHostUSGovernment = "https://login.microsoftonline.us"
	// AuthorityHostChina is Azure China, operated by 21Vianet.
	AuthorityHostChina = "https://login.partner.microsoftonline.cn"
	// AuthorityHostChinaLegacy is Azure China's older host name, still
	// served.
	AuthorityHostChinaLegacy = "https://login.chinacloudapi.cn"
)

// Tenant names of Entra's multi-tenant authorities.
const (
	// Organizations accepts work and school accounts of any tenant.
	Organizations = "organizations"
	// Common accepts work and school accounts of any tenant and, when
	// TenantAdmission.AllowPersonalAccounts is set, personal Microsoft
	// accounts.
	Common = "common"
	// PersonalAccountsTenantID is the tenant of personal Microsoft accounts
	// (outlook.com, xbox.com...).
	PersonalAccountsTenantID = "9188040d-6c67-4c5b-b112-36a304b66dad"
)

// DefaultTenantCheckCacheTTL is how long an answer of
// TenantAdmission.Check is reused.
const DefaultTenantCheckCacheTTL = 5 * time.Minute

// DefaultTenantCheckTimeout is how long a call of TenantAdmission.Check
// may take before the requests waiting for it are answered 503.
const DefaultTenantCheckTimeout = 5 * time.Second

// TokenVersions selects which Entra access token versions an authority's
// tokens may have. The version a client receives is set by the API
// registration's requestedAccessTokenVersion, not by the endpoint the
// client used.
type TokenVersions uint8

// Token version flags. The zero value accepts both.
const (
	TokenV1 TokenVersions = 1 << iota
	TokenV2
	AllTokenVersions = TokenV1 | TokenV2
)

// An Authority is an issuer of the tokens an API accepts: where its OpenID
// metadata documents live, which issuer they announce (a literal URL, or a
// template with {tenantid} for multi-tenant authorities), which keys sign
// for which issuer, and which tenants are admitted. Build one with
// EntraTenant, EntraMultiTenant, ExternalIDTenant or B2CTenant; the With
// methods return a changed copy.
//
// An Authority is a description; a Provider loads each one's metadata and
// keys once and keeps them fresh.
type Authority struct {
	shape     shape // what differs between kinds of authority: shape.go
	host      string
	tenant    string // the tenant path segment of the metadata URLs
	tenantID  string // known up front (a GUID tenant, External ID)
	policies  []string
	admission TenantAdmission
	versions  TokenVersions
	issuers   []string
	appID     string
}

// EntraTenant is a single Microsoft Entra ID workforce tenant, named by its
// tenant ID (a GUID) or one of its verified domains (contoso.onmicrosoft.com,
// contoso.com). Only its tokens are accepted: iss must be the issuer its
// metadata announces and tid its tenant ID. Both v1.0 and v2.0 tokens are
// read unless WithTokenVersions says otherwise.
func EntraTenant(tenant string) Authority {
	a := Authority{shape: entraTenant{}, host: DefaultAuthorityHost, tenant: strings.ToLower(tenant)}
	if isGUID(a.tenant) {
		// The metadata must name this tenant: a host (or proxy) that
		// serves another tenant's metadata is refused, not trusted.
		a.tenantID = a.tenant
	}
	return a
}

// EntraMultiTenant is Entra's multi-tenant authority, Organizations or
// Common, for an API that any organisation can use. Its metadata announces
// issuer templates, https://login.microsoftonline.com/{tenantid}/v2.0 and
// https://sts.windows.net/{tenantid}/: a token is accepted only when its iss
// is the template filled with its own tid, the key that signed it may sign
// for that issuer, and admission admits its tenant.
//
// admission is required: a multi-tenant API that admits any tenant in the
// world must say so with AllowAnyTenant.
func EntraMultiTenant(tenant string, admission TenantAdmission) Authority {
	admission.AllowedTenantIDs = slices.Clone(admission.AllowedTenantIDs)
	return Authority{shape: entraMultiTenant{}, host: DefaultAuthorityHost, tenant: strings.ToLower(tenant), admission: admission}
}

// ExternalIDTenant is a Microsoft Entra External ID tenant (a customer, or
// "external", tenant), whose users sign in at
// https://{subdomain}.ciamlogin.com. subdomain is the tenant's initial
// domain name without .onmicrosoft.com; tenantID its tenant ID. Its tokens
// are v2.0, with issuer https://{tenantID}.ciamlogin.com/{tenantID}/v2.0.
// Use WithHost for a custom URL domain.
func ExternalIDTenant(subdomain, tenantID string) Authority {
	subdomain = strings.ToLower(subdomain)
	return Authority{
		shape: externalID{}, host: "https://" + subdomain + ".ciamlogin.com",
		tenant: strings.ToLower(tenantID), tenantID: strings.ToLower(tenantID),
	}
}

// B2CTenant is an Azure AD B2C tenant and the user flows or custom policies
// whose tokens are accepted. name is the tenant name (contoso for
// contoso.onmicrosoft.com); metadata is read per policy from
// https://{name}.b2clogin.com/{name}.onmicrosoft.com/{policy}/v2.0/.well-known/openid-configuration.
// A token must name one of the policies in tfp (or acr; policy names
// compare case-insensitively, as B2C treats them), and is checked against
// that policy's issuer and keys. B2C tokens may lack tid; their tenant is
// the one the issuer names, by ID or, on a custom domain, by domain. Use
// WithHost for a custom domain.
func B2CTenant(name string, policies ...string) Authority {
	name = strings.ToLower(name)
	return Authority{shape: b2c{}, host: "https://" + name + ".b2clogin.com", tenant: name + ".onmicrosoft.com", policies: slices.Clone(policies)}
}

// WithHost returns a copy of a that reads its metadata from host (scheme and
// host only: AuthorityHostUSGovernment, AuthorityHostChina, a custom
// domain, or a loopback test tenant, where plain http is accepted) instead
// of its default host.
func (a Authority) WithHost(host string) Authority {
	a.host = strings.TrimRight(host, "/")
	return a
}

// WithTokenVersions returns a copy of a Microsoft Entra ID authority
// (EntraTenant, EntraMultiTenant) that accepts only the token versions
// given. Whatever they are, the v2.0 metadata is read: its key set is
// where Entra says which tenant each key may sign for, and that binds
// v1.0 tokens too. External ID issues v2.0 tokens only; B2C tokens are
// accepted whatever their ver.
func (a Authority) WithTokenVersions(v TokenVersions) Authority {
	a.versions = v
	return a
}

// WithIssuers returns a copy of a single-tenant authority (EntraTenant,
// ExternalIDTenant) whose accepted issuers are these instead of those its
// metadata announces. A "{tenantid}" placeholder is filled from the
// token's tid claim. Issuers ending in /v2.0 are v2.0 issuers, the others
// v1.0. The metadata must still name the tenant.
func (a Authority) WithIssuers(issuers ...string) Authority {
	a.issuers = slices.Clone(issuers)
	return a
}

// WithAppSigningKeys returns a copy of a Microsoft Entra ID or External ID
// authority that reads the signing keys Entra keeps for application appID
// alone (metadata with ?appid=appID), as it does for an app registration
// with a custom signing key, e.g. for claims mapping. appID is usually the
// API's own client ID.
func (a Authority) WithAppSigningKeys(appID string) Authority {
	a.appID = strings.ToLower(appID)
	return a
}

// String names the authority, for logs and Stats.
func (a Authority) String() string {
	if a.shape == nil {
		return "(zero Authority)"
	}
	return a.shape.describe(&a)
}

// TenantAdmission decides which tenants a multi-tenant authority admits.
// Set AllowedTenantIDs, Check, or both (the list is consulted first); or
// AllowAnyTenant alone.
type TenantAdmission struct {
	// AllowedTenantIDs admits these tenants (GUIDs). Looking a tenant up
	// costs the same whatever the list's length.
	AllowedTenantIDs []string

	// Check decides for tenants not in AllowedTenantIDs, e.g. by asking a
	// database whether the customer is onboarded. It runs only for tokens
	// whose signature is valid; its answers are reused for CheckCacheTTL,
	// and concurrent checks of one tenant share one call. An error answers
	// the request 503 with Retry-After: the token may well be good.
	//
	// tenantID is the token's tid in lower case: a GUID, never a domain.
	// ctx carries the values of the request that started the call (its
	// trace, for instance) but not its cancellation, since the call
	// answers every request waiting for it; it is cancelled after
	// CheckTimeout, or when the Provider closes. A Check that ignores ctx
	// holds no request beyond CheckTimeout: those waiting get 503. At most
	// 64 calls run at once, overdue ones included; beyond that, tenants
	// not already answered get 503 at once until some return.
	Check func(ctx context.Context, tenantID string) (bool, error)

	// CheckCacheTTL is how long Check's answers are kept. Default
	// DefaultTenantCheckCacheTTL; at least 1 s. Errors are kept 1 s.
	CheckCacheTTL time.Duration

	// CheckTimeout bounds each call of Check. Default
	// DefaultTenantCheckTimeout; at least 100 ms.
	CheckTimeout time.Duration

	// AllowAnyTenant admits every tenant in the world: any organisation can
	// then call the API. Use it only when the API authorizes callers some
	// other way (per-tenant data, app roles granted per tenant).
	AllowAnyTenant bool

	// AllowPersonalAccounts admits personal Microsoft accounts
	// (PersonalAccountsTenantID). Only the Common authority issues their
	// tokens; no other setting admits them.
	AllowPersonalAccounts bool
}

var (
	dnsNamePattern  = regexp.MustCompile(`^(?i:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)(?:\.(?i:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?))+$`)
	dnsLabelPattern = regexp.MustCompile(`^(?i:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)$`)
	policyPattern   = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,128}$`)
)

// check validates a before anything is fetched: what every authority
// needs, then what its shape does.
func (a *Authority) check() error {
	if a.shape == nil {
		return fmt.Errorf("an Authority must be built with EntraTenant, EntraMultiTenant, ExternalIDTenant or B2CTenant")
	}
	if _, err := parseFetchURL(a.host); err != nil {
		return fmt.Errorf("authority %s: host: %v", a, err)
	}
	if u, _ := url.Parse(a.host); u.Path != "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("authority host %q must be a scheme and host only, like %s", a.host, DefaultAuthorityHost)
	}
	if a.versions&^AllTokenVersions != 0 {
		return fmt.Errorf("%s: WithTokenVersions has unknown bits %#x", a.shape.name(), uint8(a.versions))
	}
	for _, iss := range a.issuers {
		// A template names the tenant in the host, too (External ID).
		if u, err := url.Parse(fillTenant(iss, "00000000-0000-0000-0000-000000000000")); err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
			return fmt.Errorf("%s: WithIssuers: %q is not an http(s) URL", a.shape.name(), iss)
		}
	}
	if a.appID != "" && !isGUID(a.appID) {
		return fmt.Errorf("%s: WithAppSigningKeys: %q is not an application ID (GUID)", a.shape.name(), a.appID)
	}
	if err := a.shape.check(a); err != nil {
		return err
	}
	if routedDocuments(a.shape.documents(a)) == 0 {
		return fmt.Errorf("authority %s issues no token version that WithTokenVersions accepts", a)
	}
	return nil
}

// acceptedVersions is what WithTokenVersions set, both by default.
func (a *Authority) acceptedVersions() TokenVersions {
	if a.versions == 0 {
		return AllTokenVersions
	}
	return a.versions
}

// documentQuery is the query of the authority's metadata URLs.
func (a *Authority) documentQuery() string {
	if a.appID == "" {
		return ""
	}
	return "?appid=" + url.QueryEscape(a.appID)
}

// configured reports whether t says anything: only EntraMultiTenant sets
// one, and requires it.
func (t TenantAdmission) configured() bool {
	return len(t.AllowedTenantIDs) > 0 || t.Check != nil || t.AllowAnyTenant
}

func (t TenantAdmission) check(tenant string) error {
	for _, id := range t.AllowedTenantIDs {
		if !isGUID(id) {
			return fmt.Errorf("TenantAdmission.AllowedTenantIDs: %q is not a tenant ID (GUID)", id)
		}
	}
	switch {
	case t.AllowAnyTenant && (len(t.AllowedTenantIDs) > 0 || t.Check != nil):
		return fmt.Errorf("TenantAdmission: AllowAnyTenant admits every tenant; it cannot be combined with AllowedTenantIDs or Check")
	case !t.AllowAnyTenant && len(t.AllowedTenantIDs) == 0 && t.Check == nil:
		return fmt.Errorf("EntraMultiTenant(%q): TenantAdmission must name the admitted tenants (AllowedTenantIDs or Check) or set AllowAnyTenant", tenant)
	case t.AllowPersonalAccounts && tenant != Common:
		return fmt.Errorf("TenantAdmission.AllowPersonalAccounts: personal Microsoft accounts sign in only through %q, not %q", Common, tenant)
	case t.CheckCacheTTL != 0 && t.CheckCacheTTL < time.Second:
		return fmt.Errorf("TenantAdmission.CheckCacheTTL %v is below the 1s minimum", t.CheckCacheTTL)
	case t.CheckTimeout != 0 && t.CheckTimeout < minFetchTimeout:
		return fmt.Errorf("TenantAdmission.CheckTimeout %v is below the %v minimum", t.CheckTimeout, minFetchTimeout)
	case t.Check == nil && t.CheckTimeout != 0:
		return fmt.Errorf("TenantAdmission.CheckTimeout is set but Check is not")
	}
	return nil
}
