package entratest

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/entragate/entragate/middleware"
)

// Tenant is one directory on a Server, with an API app registration that
// tokens are minted for, a signed-in user, a client app and a daemon app.
// It is a workforce tenant unless created with ExternalID or B2C.
type Tenant struct {
	// Kind is the kind of tenant.
	Kind TenantKind
	// ID is the tenant (directory) ID, a GUID.
	ID string
	// ClientID is the application ID of the API that tokens are for.
	ClientID string
	// Domain is the tenant's initial domain, e.g. contoso.onmicrosoft.com.
	Domain string
	// User is the user delegated tokens are issued for.
	User User
	// ClientApp is the application ID of the client (a SPA or web app) that
	// requests delegated tokens.
	ClientApp string
	// DaemonApp is the application ID, and DaemonObjectID the service
	// principal, of the client that requests app-only tokens.
	DaemonApp, DaemonObjectID string
	// Subdomain is an External ID tenant's ciamlogin.com subdomain.
	Subdomain string
	// Policies are a B2C tenant's user flows; tokens name the first unless
	// the Policy option says otherwise.
	Policies []string

	server         *Server
	policyKeys     map[string]*Key // B2C policies with a key of their own
	issuerByDomain bool
}

// TenantKind says which Microsoft identity product a tenant belongs to.
type TenantKind int

const (
	// KindWorkforce is a Microsoft Entra ID tenant of an organisation.
	KindWorkforce TenantKind = iota
	// KindExternalID is a Microsoft Entra External ID (customer) tenant,
	// signing users in at {subdomain}.ciamlogin.com.
	KindExternalID
	// KindB2C is an Azure AD B2C tenant with user flows (policies).
	KindB2C
)

// User is a user of a tenant.
type User struct {
	ObjectID   string // oid
	Name       string // name
	Username   string // preferred_username, upn, unique_name
	GivenName  string
	FamilyName string
	// Groups are the object IDs of the user's groups, direct and
	// transitive. Access tokens list them in groups, or, for more than
	// GroupOverageLimit, mark the overage; the Graph endpoint
	// transitiveMemberOf pages through them.
	Groups []string
}

// TenantOption customises a tenant at creation.
type TenantOption func(*Tenant)

// WithTenantID fixes the tenant ID (default: random).
func WithTenantID(id string) TenantOption { return func(t *Tenant) { t.ID = strings.ToLower(id) } }

// WithClientID fixes the API's application ID (default: random).
func WithClientID(id string) TenantOption {
	return func(t *Tenant) { t.ClientID = strings.ToLower(id) }
}

// WithUser sets the default user of delegated tokens.
func WithUser(u User) TenantOption { return func(t *Tenant) { t.User = u } }

// WithDomain sets the tenant's initial domain (default derived from the ID);
// the server answers metadata requests naming the domain as well as the ID.
func WithDomain(domain string) TenantOption {
	return func(t *Tenant) { t.Domain = strings.ToLower(domain) }
}

// ExternalID makes the tenant a Microsoft Entra External ID tenant whose
// users sign in at https://{subdomain}.ciamlogin.com: its metadata is
// served at /{tenant ID or subdomain.onmicrosoft.com}/v2.0/..., it issues
// v2.0 tokens only, with issuer https://{tenant ID}.ciamlogin.com/{tenant ID}/v2.0.
func ExternalID(subdomain string) TenantOption {
	return func(t *Tenant) {
		t.Kind = KindExternalID
		t.Subdomain = strings.ToLower(subdomain)
		t.Domain = t.Subdomain + ".onmicrosoft.com"
	}
}

// B2C makes the tenant an Azure AD B2C tenant named name (name.onmicrosoft.com)
// with the given user flows. Its metadata and keys are served per policy at
// /{name}.onmicrosoft.com/{policy}/v2.0/.well-known/openid-configuration,
// its issuer is {server URL}/{tenant ID}/v2.0/, and its tokens are shaped
// like B2C's: ver 1.0, no tid, the policy in tfp.
func B2C(name string, policies ...string) TenantOption {
	return func(t *Tenant) {
		t.Kind = KindB2C
		t.Domain = strings.ToLower(name) + ".onmicrosoft.com"
		t.Policies = slices.Clone(policies)
		if len(t.Policies) == 0 {
			t.Policies = []string{"B2C_1_signupsignin"}
		}
	}
}

// IssuerByDomain makes a B2C tenant's issuer name the tenant by its domain
// instead of its tenant ID, as a B2C tenant on a custom domain may:
// {server URL}/{name}.onmicrosoft.com/v2.0/.
func IssuerByDomain() TenantOption { return func(t *Tenant) { t.issuerByDomain = true } }

// NewTenant starts a Server on loopback with one tenant, and closes it when
// the test ends.
func NewTenant(tb testing.TB, opts ...TenantOption) *Tenant {
	tb.Helper()
	s := NewServer()
	tb.Cleanup(s.Close)
	return s.NewTenant(opts...)
}

// NewTenant adds a tenant to the server. Tenants share the server's keys, as
// Entra's tenants do, and differ by ID and therefore issuer.
func (s *Server) NewTenant(opts ...TenantOption) *Tenant {
	t := &Tenant{
		ID:             NewGUID(),
		ClientID:       NewGUID(),
		ClientApp:      NewGUID(),
		DaemonApp:      NewGUID(),
		DaemonObjectID: NewGUID(),
		User: User{
			ObjectID:   NewGUID(),
			Name:       "Ada Lovelace",
			GivenName:  "Ada",
			FamilyName: "Lovelace",
		},
		server: s,
	}
	for _, o := range opts {
		o(t)
	}
	if t.Domain == "" {
		t.Domain = "contoso" + strings.ReplaceAll(t.ID[:8], "-", "") + ".onmicrosoft.com"
	}
	if t.User.Username == "" {
		t.User.Username = "ada@" + t.Domain
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, name := range []string{t.ID, t.Domain} {
		if _, dup := s.tenants[name]; dup {
			panic(fmt.Sprintf("entratest: tenant %s already exists on this server", name))
		}
	}
	s.tenants[t.ID] = t
	s.tenants[t.Domain] = t
	return t
}

// Server returns the server the tenant lives on, for key and fault controls.
func (t *Tenant) Server() *Server { return t.server }

// IssuerV2 is the iss of the tenant's v2.0 tokens (of all its tokens, for
// External ID and B2C tenants).
func (t *Tenant) IssuerV2() string { return t.issuer() }

// IssuerV1 is the iss of the tenant's v1.0 tokens. Like Entra's, it names
// sts.windows.net (or the cloud's token service), not the authority host.
func (t *Tenant) IssuerV1() string { return t.server.issuerV1(t.ID) }

func (t *Tenant) issuer() string {
	switch t.Kind {
	case KindExternalID:
		return "https://" + t.ID + ".ciamlogin.com/" + t.ID + "/v2.0"
	case KindB2C:
		if t.issuerByDomain {
			return t.server.URL + "/" + t.Domain + "/v2.0/"
		}
		return t.server.URL + "/" + t.ID + "/v2.0/"
	}
	return t.server.issuerV2(t.ID)
}

// MetadataURL is the tenant's v2.0 OpenID configuration document (its first
// policy's, for B2C).
func (t *Tenant) MetadataURL() string {
	if t.Kind == KindB2C {
		return t.server.URL + "/" + t.Domain + "/" + t.Policies[0] + "/v2.0/.well-known/openid-configuration"
	}
	return t.server.URL + "/" + t.ID + "/v2.0/.well-known/openid-configuration"
}

// Authority returns the middleware.Authority of this tenant on its server.
func (t *Tenant) Authority() middleware.Authority {
	switch t.Kind {
	case KindExternalID:
		return middleware.ExternalIDTenant(t.Subdomain, t.ID).WithHost(t.server.URL)
	case KindB2C:
		return middleware.B2CTenant(strings.TrimSuffix(t.Domain, ".onmicrosoft.com"), t.Policies...).WithHost(t.server.URL)
	}
	return middleware.EntraTenant(t.ID).WithHost(t.server.URL)
}

// Config returns a middleware configuration that trusts this tenant for its
// API (ClientID), ready for middleware.New: its Authority, on this server.
func (t *Tenant) Config() middleware.Config {
	return middleware.Config{ClientID: t.ClientID, Authorities: []middleware.Authority{t.Authority()}}
}

// SetPolicyKey gives a B2C policy a signing key of its own, as a custom
// policy's key container does: the policy's key set lists only k, and its
// tokens are signed with it.
func (t *Tenant) SetPolicyKey(policy string, k *Key) {
	t.server.mu.Lock()
	defer t.server.mu.Unlock()
	if t.policyKeys == nil {
		t.policyKeys = map[string]*Key{}
	}
	t.policyKeys[strings.ToLower(policy)] = k
}

// policyKey is the policy's own key, or nil. The caller holds server.mu.
func (t *Tenant) policyKey(policy string) *Key { return t.policyKeys[strings.ToLower(policy)] }

func (t *Tenant) hasPolicy(policy string) bool {
	for _, p := range t.Policies {
		if strings.EqualFold(p, policy) {
			return true
		}
	}
	return false
}

// NewGUID returns a random GUID in Entra's lower-case form.
func NewGUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// opaque returns a random base64url string, like Entra's aio, rh and uti.
func opaque(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
