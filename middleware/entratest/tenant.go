package entratest

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"github.com/entragate/entragate/middleware"
)

// Tenant is one directory on a Server, with an API app registration that
// tokens are minted for, a signed-in user, a client app and a daemon app.
type Tenant struct {
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

	server *Server
}

// User is a user of a tenant.
type User struct {
	ObjectID   string // oid
	Name       string // name
	Username   string // preferred_username, upn, unique_name
	GivenName  string
	FamilyName string
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
	if _, dup := s.tenants[t.ID]; dup {
		panic(fmt.Sprintf("entratest: tenant %s already exists on this server", t.ID))
	}
	s.tenants[t.ID] = t
	return t
}

// Server returns the server the tenant lives on, for key and fault controls.
func (t *Tenant) Server() *Server { return t.server }

// IssuerV2 is the iss of the tenant's v2.0 tokens.
func (t *Tenant) IssuerV2() string { return t.server.URL + "/" + t.ID + "/v2.0" }

// IssuerV1 is the iss of the tenant's v1.0 tokens. Like Entra's, it names
// sts.windows.net, not the authority host.
func (t *Tenant) IssuerV1() string { return "https://sts.windows.net/" + t.ID + "/" }

// MetadataURL is the tenant's v2.0 OpenID configuration document.
func (t *Tenant) MetadataURL() string {
	return t.server.URL + "/" + t.ID + "/v2.0/.well-known/openid-configuration"
}

// Config returns a middleware configuration that trusts this tenant for its
// API (ClientID), ready for middleware.New.
func (t *Tenant) Config() middleware.Config {
	return middleware.Config{
		TenantID:      t.ID,
		ClientID:      t.ClientID,
		AuthorityHost: t.server.URL,
	}
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
