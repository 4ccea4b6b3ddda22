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

// An Authority is an issuer of the tokens an API accepts: where its OpenID
// metadata documents live, which issuer they announce (a literal URL, or a
// template with {tenantid} for multi-tenant authorities), which keys sign
// for which issuer, and which tenants are admitted. Build one with
// EntraTenant, EntraMultiTenant, ExternalIDTenant or B2CTenant, and pass it
// in Config.Authorities; WithHost moves it to another cloud or host.
//
// An Authority is a description; an Authenticator loads each one's metadata
// and keys once and keeps them fresh.
type Authority struct {
	kind      authorityKind
	host      string
	tenant    string // the tenant path segment of the metadata URL
	tenantID  string // known up front (a GUID tenant, External ID)
	policies  []string
	admission TenantAdmission
}

type authorityKind uint8

const (
	kindEntraTenant authorityKind = iota + 1
	kindEntraMultiTenant
	kindExternalID
	kindB2C
)

// EntraTenant is a single Microsoft Entra ID workforce tenant, named by its
// tenant ID (a GUID) or one of its verified domains (contoso.onmicrosoft.com,
// contoso.com). Only its tokens are accepted: iss must be the issuer its
// metadata announces and tid its tenant ID. Both v1.0 and v2.0 tokens are
// read, as Config.TokenVersions allows.
func EntraTenant(tenant string) Authority {
	a := Authority{kind: kindEntraTenant, host: DefaultAuthorityHost, tenant: strings.ToLower(tenant)}
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
	return Authority{kind: kindEntraMultiTenant, host: DefaultAuthorityHost, tenant: strings.ToLower(tenant), admission: admission}
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
		kind: kindExternalID, host: "https://" + subdomain + ".ciamlogin.com",
		tenant: strings.ToLower(tenantID), tenantID: strings.ToLower(tenantID),
	}
}

// B2CTenant is an Azure AD B2C tenant and the user flows or custom policies
// whose tokens are accepted. name is the tenant name (contoso for
// contoso.onmicrosoft.com); metadata is read per policy from
// https://{name}.b2clogin.com/{name}.onmicrosoft.com/{policy}/v2.0/.well-known/openid-configuration.
// A token must name one of the policies in tfp (or acr; policy names
// compare case-insensitively, as B2C treats them), and is checked against
// that policy's issuer and keys. B2C tokens may lack tid; their
// tenant is the one the issuer names. Use WithHost for a custom domain.
func B2CTenant(name string, policies ...string) Authority {
	name = strings.ToLower(name)
	return Authority{kind: kindB2C, host: "https://" + name + ".b2clogin.com", tenant: name + ".onmicrosoft.com", policies: slices.Clone(policies)}
}

// WithHost returns a copy of a that reads its metadata from host (scheme and
// host, e.g. AuthorityHostUSGovernment, a custom domain, or a loopback test
// tenant) instead of its default host.
func (a Authority) WithHost(host string) Authority {
	a.host = strings.TrimRight(host, "/")
	return a
}

// String names the authority, for logs and Stats.
func (a Authority) String() string {
	switch a.kind {
	case kindB2C:
		return a.host + "/" + a.tenant + " (B2C: " + strings.Join(a.policies, ", ") + ")"
	case kindExternalID:
		return a.host + "/" + a.tenant + " (External ID)"
	}
	return a.host + "/" + a.tenant
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
	// CheckTimeout, or when the Authenticator closes. A Check that ignores
	// ctx holds no request beyond CheckTimeout: those waiting get 503. At
	// most 64 calls run at once, overdue ones included; beyond that,
	// tenants not already answered get 503 at once until some return.
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

// check validates a before anything is fetched.
func (a Authority) check() error {
	if a.kind == 0 {
		return fmt.Errorf("an Authority must be built with EntraTenant, EntraMultiTenant, ExternalIDTenant or B2CTenant")
	}
	if _, err := parseFetchURL(a.host); err != nil {
		return fmt.Errorf("authority %s: host: %v", a, err)
	}
	if u, _ := url.Parse(a.host); u.Path != "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("authority host %q must be a scheme and host only, like %s", a.host, DefaultAuthorityHost)
	}
	switch a.kind {
	case kindEntraTenant:
		switch {
		case a.tenant == "":
			return fmt.Errorf("EntraTenant: the tenant ID or domain is required")
		case a.tenant == Organizations || a.tenant == Common:
			return fmt.Errorf("EntraTenant(%q): %q is multi-tenant; use EntraMultiTenant with a TenantAdmission", a.tenant, a.tenant)
		case a.tenant == "consumers":
			return fmt.Errorf("EntraTenant(%q): personal accounts are accepted through EntraMultiTenant(Common, TenantAdmission{AllowPersonalAccounts: true})", a.tenant)
		case !isGUID(a.tenant) && !dnsNamePattern.MatchString(a.tenant):
			return fmt.Errorf("EntraTenant(%q): not a tenant ID (GUID) or a domain name", a.tenant)
		}
	case kindEntraMultiTenant:
		if a.tenant != Organizations && a.tenant != Common {
			return fmt.Errorf("EntraMultiTenant(%q): the tenant must be %q or %q", a.tenant, Organizations, Common)
		}
		return a.admission.check(a.tenant)
	case kindExternalID:
		sub := strings.TrimSuffix(strings.TrimPrefix(a.host, "https://"), ".ciamlogin.com")
		switch {
		case !isGUID(a.tenantID):
			return fmt.Errorf("ExternalIDTenant: tenant ID %q is not a GUID", a.tenantID)
		case strings.HasSuffix(a.host, ".ciamlogin.com") && !dnsLabelPattern.MatchString(sub):
			return fmt.Errorf("ExternalIDTenant: subdomain %q is not a DNS label", sub)
		}
	case kindB2C:
		name := strings.TrimSuffix(a.tenant, ".onmicrosoft.com")
		switch {
		case !dnsLabelPattern.MatchString(name):
			return fmt.Errorf("B2CTenant: tenant name %q is not a DNS label (contoso for contoso.onmicrosoft.com)", name)
		case len(a.policies) == 0:
			return fmt.Errorf("B2CTenant(%q): at least one user flow or policy is required", name)
		}
		for _, p := range a.policies {
			if !policyPattern.MatchString(p) {
				return fmt.Errorf("B2CTenant(%q): invalid policy name %q", name, p)
			}
		}
	default:
		return fmt.Errorf("an Authority must be built with EntraTenant, EntraMultiTenant, ExternalIDTenant or B2CTenant")
	}
	return nil
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

// sourceSpec is one metadata document an authority is read from: one per
// token version for Entra, one per policy for B2C.
type sourceSpec struct {
	version string // "1.0" or "2.0": the issuer form the document announces
	policy  string // B2C only
	url     string
	// routes is false for a document read only for the issuers its key
	// set names (Entra's v2.0 document of an API that takes v1.0 tokens
	// only): its issuer routes no token.
	routes bool
	// namesKeyIssuers marks Entra's v2.0 documents: Entra states which
	// issuer each key may sign for only in its v2.0 key sets, and that
	// restriction binds the authority's v1.0 tokens too.
	namesKeyIssuers bool
}

// sources lists the metadata documents of a. appID, when set, asks for the
// application's own signing keys (?appid=), which Entra keeps for apps with
// a custom signing key.
func (a Authority) sources(versions TokenVersions, appID string) []sourceSpec {
	query := ""
	if appID != "" {
		query = "?appid=" + url.QueryEscape(appID)
	}
	base := a.host + "/" + url.PathEscape(a.tenant)
	v2 := sourceSpec{version: "2.0", url: base + "/v2.0/.well-known/openid-configuration" + query, routes: versions&TokenV2 != 0, namesKeyIssuers: true}
	var out []sourceSpec
	switch a.kind {
	case kindEntraTenant, kindEntraMultiTenant:
		// The v2.0 document is read whatever versions says: without its
		// key set, a v1.0 token signed with a key Entra restricts to
		// another tenant could not be told from a genuine one.
		out = append(out, v2)
		if versions&TokenV1 != 0 {
			out = append(out, sourceSpec{version: "1.0", url: base + "/.well-known/openid-configuration" + query, routes: true})
		}
	case kindExternalID:
		// External ID issues v2.0 tokens only.
		if versions&TokenV2 != 0 {
			out = append(out, v2)
		}
	case kindB2C:
		for _, p := range a.policies {
			out = append(out, sourceSpec{version: "2.0", policy: p, url: base + "/" + url.PathEscape(p) + "/v2.0/.well-known/openid-configuration", routes: true})
		}
	}
	return out
}

// routedVersions counts the documents of specs whose issuers route tokens.
func routedVersions(specs []sourceSpec) int {
	n := 0
	for _, s := range specs {
		if s.routes {
			n++
		}
	}
	return n
}
