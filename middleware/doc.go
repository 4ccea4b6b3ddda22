// Package middleware protects HTTP APIs with Microsoft Entra ID (formerly
// Azure AD) access tokens.
//
// An Authenticator validates tokens for one API registration the way
// Microsoft.Identity.Web does: RS256 signatures against the keys the
// issuer publishes (found through its OpenID metadata and served through
// keyfunc), exp, nbf and iat with five minutes of clock skew, the audience
// (the API's client ID or api://client-ID), the issuer announced by the
// metadata with a matching token version and tenant, the presence of scp
// or roles, and the claims that tell an access token from an ID token.
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
// Handlers read the typed claims with claims.FromContext. Validate checks a
// raw token without HTTP, for gRPC interceptors, websocket upgrades or
// queues.
//
// # Authorities
//
// An Authority is where tokens come from: the metadata documents that
// announce an issuer (a literal URL, or a template with {tenantid}), the key
// sets that sign for it, and the tenants admitted. Config.TenantID is
// shorthand for one EntraTenant; Config.Authorities lists any others:
//
//	EntraTenant(tenant)                          one workforce tenant, by ID or domain
//	EntraMultiTenant(Organizations, admission)   any organisation's tenant, if admitted
//	EntraMultiTenant(Common, admission)          the same, and personal accounts if allowed
//	ExternalIDTenant(subdomain, tenantID)        an Entra External ID (customer) tenant
//	B2CTenant(name, policies...)                 an Azure AD B2C tenant and its user flows
//	a.WithHost(host)                             another cloud, a custom domain, a test tenant
//
// TenantAdmission is required for multi-tenant authorities: a list of tenant
// IDs, a Check function (cached, its concurrent calls collapsed, a failure
// answered 503), or AllowAnyTenant. Several authorities in one Config share
// one middleware: each token is routed by its iss to the authority that
// issued it, checked against that authority's keys only, and accepted when
// that authority accepts it; one authority's outage never holds another's
// tokens. A new shape of authority is a new constructor beside these, with
// its metadata URLs (Authority.sources) and its tenant rule
// (authority.checkTenant).
//
// # Answers
//
// Refused requests are answered per RFC 6750: 401 with a bare Bearer
// challenge when no token was sent, 400 invalid_request for a malformed
// Authorization header, 401 invalid_token for a bad token (the description
// says why without echoing it), 403 insufficient_scope with the scope
// attribute for a missing permission, and 503 with Retry-After while keys,
// or a tenant's admission, cannot be checked. Every error is an *Error
// wrapping one of the Err* reasons, for errors.Is and errors.As.
//
// # Keys and the cache
//
// Key refresh is bounded: metadata and keys are reloaded hourly; a token
// with an unknown key ID can cause at most one load per
// KeyMissRefreshInterval (5 s) whatever the request rate; a service starts
// even while Entra is unreachable and loads keys when it comes back. Each
// metadata document (per token version, per B2C policy, per authority)
// loads and fails on its own.
//
// A token seen before is answered from a cache of verified tokens without
// another signature check, for as long as it is within its validity, the
// key that signed it is still published and its tenant still admitted;
// authorization runs on every request. See the README for the full policy,
// the measurements, and what is deliberately not validated.
//
// For tests, the entratest subpackage is a fake Entra tenant on loopback.
package middleware
