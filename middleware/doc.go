// Package middleware protects HTTP APIs (and gRPC services, gateways and
// message consumers, through the transport-neutral calls) with Microsoft
// Entra ID (formerly Azure AD) access tokens.
//
// Tokens are validated the way Microsoft.Identity.Web does: RS256
// signatures against the keys the issuer publishes (found through its
// OpenID metadata and served through keyfunc), Entra's per-key issuer rule,
// exp, nbf and iat with five minutes of clock skew, the audience (the API's
// client ID or api://client-ID), the issuer announced by the metadata with
// a matching token version and tenant, the presence of scp or roles, and
// the claims that tell an access token from an ID token.
//
// # One tenant
//
// The common case is one call:
//
//	auth, err := middleware.New(ctx, middleware.Config{
//		TenantID: os.Getenv("AZURE_TENANT_ID"), // a GUID or a verified domain
//		ClientID: os.Getenv("AZURE_CLIENT_ID"),
//	})
//	if err != nil { ... } // only for an invalid Config
//	defer auth.Close()
//	r.Use(auth.RequireAuth)
//	r.With(middleware.RequireScopeOrRole([]string{"Data.Read"}, []string{"Data.Read.All"})).Get("/data", h)
//
// RequireAuth and the Require* guards are standard func(http.Handler)
// http.Handler middleware for http.ServeMux, chi and other routers. chi's
// own middleware package is also called middleware: import this one under
// another name where both are used (entragate "github.com/entragate/entragate/middleware").
// Handlers read the typed claims with claims.FromContext.
//
// # Providers and verifiers
//
// New is shorthand for two types. A Provider (NewProvider) is where tokens
// come from: it owns the authorities, their metadata documents and keys,
// the routing of each token to its issuer, and tenant admission, and keeps
// them fresh (Close, Ready, Stats). Cheap verifiers share one Provider, so
// a process fetches each document once whatever it serves:
//
//	p, err := middleware.NewProvider(ctx, middleware.ProviderConfig{
//		Authorities: []middleware.Authority{middleware.EntraTenant(tenantID)},
//	})
//	orders, err := p.NewAuthenticator(middleware.APIConfig{ClientID: ordersAPI})   // one per API
//	billing, err := p.NewAuthenticator(middleware.APIConfig{ClientID: billingAPI, DenyGuestUsers: true})
//	web, err := p.NewIDTokenVerifier(middleware.IDTokenConfig{ClientID: webApp}) // one per web app
//
// An Authenticator checks access tokens for one API (audiences, required
// scopes and roles, guests, its cache of verified tokens, how it answers);
// an IDTokenVerifier checks the ID tokens of one web app's sign-ins.
//
// # Authorities
//
// An Authority is an issuer: the metadata documents that announce it (a
// literal URL, or a template with {tenantid}), the key sets that sign for
// it, and the tenants admitted. Config.TenantID is shorthand for one
// EntraTenant; Authorities lists any others:
//
//	EntraTenant(tenant)                          one workforce tenant, by ID or domain
//	EntraMultiTenant(Organizations, admission)   any organisation's tenant, if admitted
//	EntraMultiTenant(Common, admission)          the same, and personal accounts if allowed
//	ExternalIDTenant(subdomain, tenantID)        an Entra External ID (customer) tenant
//	B2CTenant(name, policies...)                 an Azure AD B2C tenant and its user flows
//
// and each takes options: WithHost (another cloud, a custom domain, a
// test tenant), WithTokenVersions, WithIssuers and WithAppSigningKeys.
// TenantAdmission is required for multi-tenant authorities: a list of
// tenant IDs, a Check function (cached, its concurrent calls collapsed,
// bounded by a deadline, a failure answered 503), or AllowAnyTenant.
// Several authorities in one Provider: each token is routed by its iss to
// the authority that issued it, checked against that authority's keys
// only, and accepted when that authority accepts it; one authority's
// outage never holds another's tokens.
//
// For contributors: what differs between kinds of authority is in the
// file shape.go, behind one small interface (the documents to read and
// the tokens each routes, the issuer form, how a document is picked, the
// tenant and guest rules); a new kind is a constructor in authority.go
// and a shape in shape.go, nothing else.
//
// # Authorization without HTTP
//
// A Rule (AnyScope, AllScopes, AnyRole, AllRoles, ScopeOrRole) is an
// authorization requirement independent of any transport: the HTTP guards
// apply one (Require, RequireAnyScope...), and so do a gRPC interceptor
// or a gateway's auth endpoint through Authenticator.Authorize, which
// validates a raw token and applies a rule in one call. Validate is the
// same without a rule. Ready-made ones: package entragrpc (its own
// module) for gRPC servers, middleware/forwardauth for nginx, Traefik,
// Caddy and Envoy in front of services in any language. Package
// entraotel (its own module) turns the Observer's events into
// OpenTelemetry metrics and spans, middleware/msgraph resolves group
// overage through Microsoft Graph, and package tokencache (its own
// module) shares MSAL's and on-behalf-of tokens between instances in
// Redis.
//
// # Answers
//
// Refused requests are answered per RFC 6750: 401 with a bare Bearer
// challenge when no token was sent, 400 invalid_request for a malformed
// Authorization header, 401 invalid_token for a bad token (the description
// says why without echoing it), 403 insufficient_scope with the scope
// attribute for a missing permission, and 503 with Retry-After while keys,
// or a tenant's admission, cannot be checked. Every error is an *Error
// wrapping one of the Err* reasons, for errors.Is and errors.As;
// ReasonName gives each a short, stable name.
//
// # Observing
//
// An Observer's functions are called from one place each: once per token
// decision (after the route guards, for RequireAuth), once per document
// load, once per admission check. They receive no token and no user unless
// asked for the claims.
//
// # Keys and the cache
//
// Key refresh is bounded: metadata and keys are reloaded hourly; a token
// with an unknown key ID can cause at most one load per MinLoadInterval
// (5 s) whatever the request rate; a service starts even while Entra is
// unreachable and loads keys when it comes back. Each metadata document
// (per token version, per B2C policy, per authority) loads and fails on
// its own, except that v1.0 tokens wait for their authority's v2.0 key set,
// which says which tenant each key may sign for.
//
// A token seen before is answered from the Authenticator's cache of
// verified tokens without another signature check, but with its times,
// its key's publication and its tenant's admission checked again, and
// authorization on every request. Each caller gets its own copy of the
// claims. See the README
// for the full policy, the measurements, and what is deliberately not
// validated.
//
// For tests, the entratest subpackage is a fake Entra tenant on loopback.
package middleware
