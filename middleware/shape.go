package middleware

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/entragate/entragate/claims"
)

// A shape is what differs between kinds of authority, and the only place
// that knows: which metadata documents to read and which tokens each
// routes, what the issuers they announce must look like, how a document is
// picked among those announcing one issuer, and the tenant and guest
// rules. A new kind of authority is a constructor in authority.go that
// sets its shape, and the shape's type here; nothing else changes.
type shape interface {
	// name is the constructor's name, for configuration errors.
	name() string
	// describe names an authority of this shape, for logs and Stats.
	describe(a *Authority) string
	// check validates what the constructor and the With options set.
	check(a *Authority) error
	// documents lists the metadata documents to load.
	documents(a *Authority) []sourceSpec
	// tenantOfIssuer is the tenant a loaded document's issuer names, ""
	// for a template; an error refuses the document.
	tenantOfIssuer(a *Authority, issuer string) (string, error)
	// pick chooses, among documents of one authority announcing the
	// token's issuer, the one that checks it.
	pick(candidates []*source, c *claims.Claims, version string) (*source, *Error)
	// checkTenant applies the tenant rule to a token routed to st.
	checkTenant(a *authority, st *sourceState, c *claims.Claims) *Error
	// guestsApply says whether DenyGuestUsers applies to its tokens.
	guestsApply() bool
	// overlap is equal for two authorities that announce the same issuers
	// whatever their configuration, "" when there is no such risk.
	overlap(a *Authority) string
	// stepUp is where the users of a token routed to st get a new token
	// with more claims: the realm and authorization_uri of a claims
	// challenge. ok is false when the authority has no Conditional Access.
	stepUp(a *Authority, st *sourceState) (realm, authorizationURI string, ok bool)
}

// sourceSpec is one metadata document an authority is read from: one per
// token version for Entra, one per policy for B2C.
type sourceSpec struct {
	version string // "1.0" or "2.0": the issuer form the document announces
	policy  string // B2C only
	url     string
	// routes are the token versions (ver) whose tokens this document's
	// issuer may check; none for a document read only for the issuers its
	// key set names.
	routes []string
	// namesKeyIssuers marks Entra's v2.0 documents: Entra states which
	// issuer each key may sign for only in its v2.0 key sets, and that
	// restriction binds the authority's v1.0 tokens too.
	namesKeyIssuers bool
}

// routedDocuments counts the documents whose issuers route tokens.
func routedDocuments(specs []sourceSpec) int {
	n := 0
	for _, s := range specs {
		if len(s.routes) > 0 {
			n++
		}
	}
	return n
}

// entraDocuments are the v2.0 and v1.0 documents of an Entra authority:
// the v2.0 one always, since its key set says which tenant each key may
// sign for (a v1.0 token signed with a key restricted to another tenant
// could otherwise not be told from a genuine one); each routes the tokens
// of its version if accepted. v1Tenant is the tenant segment of the v1.0
// document's URL.
func entraDocuments(a *Authority, v1Tenant string) []sourceSpec {
	versions, query := a.acceptedVersions(), a.documentQuery()
	v2 := sourceSpec{version: claims.Version2, namesKeyIssuers: true,
		url: a.host + "/" + url.PathEscape(a.tenant) + "/v2.0/.well-known/openid-configuration" + query}
	if versions&TokenV2 != 0 {
		v2.routes = []string{claims.Version2}
	}
	out := []sourceSpec{v2}
	if versions&TokenV1 != 0 {
		out = append(out, sourceSpec{version: claims.Version1, routes: []string{claims.Version1},
			url: a.host + "/" + url.PathEscape(v1Tenant) + "/.well-known/openid-configuration" + query})
	}
	return out
}

// literalTenant reads the tenant ID a literal issuer names (its first path
// segment), which must be the tenant the authority names, if it names one.
func literalTenant(a *Authority, issuer string) (string, error) {
	if strings.Contains(issuer, tenantPlaceholder) {
		return "", fmt.Errorf("the issuer %q is a template, but %s is a single tenant", issuer, a)
	}
	tenant := strings.ToLower(issuerTenant(issuer))
	if !isGUID(tenant) {
		return "", fmt.Errorf("the issuer %q names no tenant ID", issuer)
	}
	if a.tenantID != "" && tenant != a.tenantID {
		return "", fmt.Errorf("the issuer %q names tenant %s, not %s", issuer, tenant, a.tenantID)
	}
	return tenant, nil
}

// pickByVersion picks the document of the token's version.
func pickByVersion(candidates []*source, _ *claims.Claims, version string) (*source, *Error) {
	for _, src := range candidates {
		if src.spec.version == version {
			return src, nil
		}
	}
	return nil, newError(ErrInvalidVersion, "the token's version does not match its issuer", nil)
}

// tidNamesIssuersTenant requires tid, and that it name the tenant the
// issuer names.
func tidNamesIssuersTenant(st *sourceState, c *claims.Claims) *Error {
	switch {
	case c.TenantID == "":
		return newError(ErrInvalidIssuer, "the token has no tid claim", nil)
	case !strings.EqualFold(c.TenantID, st.tenantID):
		return newError(ErrInvalidIssuer, "the token's tid is not the tenant of its issuer", nil)
	}
	return nil
}

// withOptions names the With options a shape uses.
type withOptions uint8

const (
	usesIssuers withOptions = 1 << iota
	usesAppSigningKeys
	usesTokenVersions
	usesAllOptions = usesIssuers | usesAppSigningKeys | usesTokenVersions
)

// checkUnusedOptions refuses the With options a shape has no use for.
func checkUnusedOptions(a *Authority, used withOptions) error {
	switch {
	case used&usesIssuers == 0 && len(a.issuers) > 0:
		return fmt.Errorf("%s: WithIssuers applies to single-tenant Entra and External ID authorities only", a.shape.name())
	case used&usesAppSigningKeys == 0 && a.appID != "":
		return fmt.Errorf("%s: WithAppSigningKeys applies to Entra and External ID authorities only", a.shape.name())
	case used&usesTokenVersions == 0 && a.versions != 0:
		return fmt.Errorf("%s: WithTokenVersions applies to Entra authorities only", a.shape.name())
	}
	return nil
}

// entraTenant is EntraTenant: one workforce tenant, by ID or domain.
type entraTenant struct{}

func (entraTenant) name() string                 { return "EntraTenant" }
func (entraTenant) describe(a *Authority) string { return a.host + "/" + a.tenant }
func (entraTenant) guestsApply() bool            { return true }
func (entraTenant) overlap(*Authority) string    { return "" }

func (entraTenant) check(a *Authority) error {
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
	return checkUnusedOptions(a, usesAllOptions)
}

func (entraTenant) documents(a *Authority) []sourceSpec { return entraDocuments(a, a.tenant) }
func (entraTenant) tenantOfIssuer(a *Authority, issuer string) (string, error) {
	return literalTenant(a, issuer)
}
func (entraTenant) pick(candidates []*source, c *claims.Claims, version string) (*source, *Error) {
	return pickByVersion(candidates, c, version)
}
func (entraTenant) checkTenant(_ *authority, st *sourceState, c *claims.Claims) *Error {
	return tidNamesIssuersTenant(st, c)
}

// stepUp names the tenant by ID once its metadata has said it.
func (entraTenant) stepUp(a *Authority, st *sourceState) (string, string, bool) {
	tenant := a.tenant
	if st != nil && st.tenantID != "" {
		tenant = st.tenantID
	}
	return tenant, a.host + "/" + url.PathEscape(tenant) + "/oauth2/authorize", true
}

// entraMultiTenant is EntraMultiTenant: organizations or common, issuer
// templates filled from tid, and tenant admission.
type entraMultiTenant struct{}

func (entraMultiTenant) name() string                 { return "EntraMultiTenant" }
func (entraMultiTenant) describe(a *Authority) string { return a.host + "/" + a.tenant }
func (entraMultiTenant) guestsApply() bool            { return true }
func (entraMultiTenant) overlap(a *Authority) string  { return "multi-tenant " + a.host }

func (entraMultiTenant) check(a *Authority) error {
	if a.tenant != Organizations && a.tenant != Common {
		return fmt.Errorf("EntraMultiTenant(%q): the tenant must be %q or %q", a.tenant, Organizations, Common)
	}
	if err := checkUnusedOptions(a, usesAppSigningKeys|usesTokenVersions); err != nil {
		return err
	}
	return a.admission.check(a.tenant)
}

// documents reads common's v1.0 document for organizations too: Entra
// serves v1.0 metadata for common only, and its issuer template is the
// same (Microsoft.IdentityModel's CreateV1Authority does likewise).
func (entraMultiTenant) documents(a *Authority) []sourceSpec { return entraDocuments(a, Common) }

func (entraMultiTenant) tenantOfIssuer(_ *Authority, issuer string) (string, error) {
	if !strings.Contains(issuer, tenantPlaceholder) {
		return "", fmt.Errorf("the multi-tenant issuer %q has no %s template", issuer, tenantPlaceholder)
	}
	return "", nil
}

func (entraMultiTenant) pick(candidates []*source, c *claims.Claims, version string) (*source, *Error) {
	return pickByVersion(candidates, c, version)
}

// checkTenant: the issuer matched the template filled with tid, a tenant
// ID; personal accounts are a rule of the configuration, checked before
// the signature, admission after it.
func (entraMultiTenant) checkTenant(a *authority, _ *sourceState, c *claims.Claims) *Error {
	return a.admit.personalAccountRule(strings.ToLower(c.TenantID))
}

// stepUp goes through common, where the realm must be empty.
func (entraMultiTenant) stepUp(a *Authority, _ *sourceState) (string, string, bool) {
	return "", a.host + "/" + Common + "/oauth2/authorize", true
}

// externalID is ExternalIDTenant: a customer tenant on ciamlogin.com,
// v2.0 tokens only, its issuer naming the tenant twice.
type externalID struct{}

func (externalID) name() string                 { return "ExternalIDTenant" }
func (externalID) describe(a *Authority) string { return a.host + "/" + a.tenant + " (External ID)" }
func (externalID) guestsApply() bool            { return true }
func (externalID) overlap(*Authority) string    { return "" }

func (externalID) check(a *Authority) error {
	sub := strings.TrimSuffix(strings.TrimPrefix(a.host, "https://"), ".ciamlogin.com")
	switch {
	case !isGUID(a.tenantID):
		return fmt.Errorf("ExternalIDTenant: tenant ID %q is not a GUID", a.tenantID)
	case strings.HasSuffix(a.host, ".ciamlogin.com") && !dnsLabelPattern.MatchString(sub):
		return fmt.Errorf("ExternalIDTenant: subdomain %q is not a DNS label", sub)
	case a.versions != 0:
		return fmt.Errorf("ExternalIDTenant: External ID issues v2.0 tokens only; WithTokenVersions does not apply")
	}
	return checkUnusedOptions(a, usesAllOptions)
}

func (externalID) documents(a *Authority) []sourceSpec {
	return []sourceSpec{{version: claims.Version2, routes: []string{claims.Version2}, namesKeyIssuers: true,
		url: a.host + "/" + url.PathEscape(a.tenant) + "/v2.0/.well-known/openid-configuration" + a.documentQuery()}}
}
func (externalID) tenantOfIssuer(a *Authority, issuer string) (string, error) {
	return literalTenant(a, issuer)
}
func (externalID) pick(candidates []*source, c *claims.Claims, version string) (*source, *Error) {
	return pickByVersion(candidates, c, version)
}
func (externalID) checkTenant(_ *authority, st *sourceState, c *claims.Claims) *Error {
	return tidNamesIssuersTenant(st, c)
}

// stepUp: External ID serves the v2.0 endpoints only.
func (externalID) stepUp(a *Authority, _ *sourceState) (string, string, bool) {
	return a.tenantID, a.host + "/" + url.PathEscape(a.tenantID) + "/oauth2/v2.0/authorize", true
}

// b2c is B2CTenant: a document and key set per user flow, the flow named
// in tfp or acr, ver 1.0 tokens under a v2.0 issuer, tid optional.
type b2c struct{}

func (b2c) name() string { return "B2CTenant" }
func (b2c) describe(a *Authority) string {
	return a.host + "/" + a.tenant + " (B2C: " + strings.Join(a.policies, ", ") + ")"
}

// guestsApply: B2C's idp names the social or local provider a customer
// signed in with, not a home tenant.
func (b2c) guestsApply() bool         { return false }
func (b2c) overlap(*Authority) string { return "" }

func (b2c) check(a *Authority) error {
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
	return checkUnusedOptions(a, 0)
}

// documents: one per policy; each routes both versions, since B2C issues
// ver 1.0 access tokens under its v2.0 issuer.
func (b2c) documents(a *Authority) []sourceSpec {
	out := make([]sourceSpec, 0, len(a.policies))
	for _, p := range a.policies {
		out = append(out, sourceSpec{version: claims.Version2, policy: p, routes: []string{claims.Version1, claims.Version2},
			url: a.host + "/" + url.PathEscape(a.tenant) + "/" + url.PathEscape(p) + "/v2.0/.well-known/openid-configuration"})
	}
	return out
}

// tenantOfIssuer accepts, beside a tenant ID, the tenant's own domain: a
// B2C tenant on a custom domain may name itself so
// (https://login.contoso.com/contoso.onmicrosoft.com/v2.0/), and the
// issuer, matched literally, pins the tenant.
func (b2c) tenantOfIssuer(a *Authority, issuer string) (string, error) {
	if t := strings.ToLower(issuerTenant(issuer)); t == a.tenant && !strings.Contains(issuer, tenantPlaceholder) {
		return t, nil
	}
	return literalTenant(a, issuer)
}

func (b2c) pick(candidates []*source, c *claims.Claims, _ string) (*source, *Error) {
	policy := c.Policy
	if policy == "" {
		policy = c.ACR
	}
	for _, src := range candidates {
		if policy != "" && strings.EqualFold(policy, src.spec.policy) {
			return src, nil
		}
	}
	return nil, newError(ErrPolicyNotAllowed, "the token's B2C user flow or policy (tfp or acr) is not accepted by this API", nil)
}

// stepUp: B2C has user flows and custom policies, not Conditional Access
// authentication contexts; no B2C token carries acrs.
func (b2c) stepUp(*Authority, *sourceState) (string, string, bool) { return "", "", false }

// checkTenant: tid is optional; when the issuer names the tenant by
// domain, tid (a GUID) cannot be compared with it, the issuer pins it.
func (b2c) checkTenant(_ *authority, st *sourceState, c *claims.Claims) *Error {
	switch {
	case c.TenantID == "":
		return nil
	case !isGUID(st.tenantID):
		if !isGUID(c.TenantID) {
			return newError(ErrInvalidIssuer, "the token's tid is not a tenant ID", nil)
		}
		return nil
	}
	return tidNamesIssuersTenant(st, c)
}
