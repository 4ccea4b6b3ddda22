// Package middleware protects HTTP APIs with Microsoft Entra ID (formerly
// Azure AD) access tokens.
//
// An Authenticator validates tokens for one API registration the way
// Microsoft.Identity.Web does: RS256 signatures against the keys the tenant
// publishes (found through its OpenID metadata, fetched with keyfunc and
// refreshed in the background), exp, nbf and iat with five minutes of clock
// skew, the audience (the API's client ID or api://client-ID), the issuer
// announced by the tenant's v1 and v2 metadata with a matching token version
// and tenant, and the presence of scp or roles, which tells an access token
// for this API from an ID token.
//
//	auth, err := middleware.New(ctx, middleware.Config{
//		TenantID: os.Getenv("AZURE_TENANT_ID"),
//		ClientID: os.Getenv("AZURE_CLIENT_ID"),
//	})
//	if err != nil { ... } // only for an invalid Config
//	defer auth.Close()
//	r.Use(auth.RequireAuth)
//	r.With(middleware.RequireScopeOrRole([]string{"Data.Read"}, []string{"Data.Read.All"})).Get("/data", h)
//
// RequireAuth and the Require* guards are standard func(http.Handler)
// http.Handler middleware for http.ServeMux, chi and other routers. Handlers
// read the typed claims with claims.FromContext. Validate checks a raw token
// without HTTP, for gRPC interceptors, websocket upgrades or queues.
//
// Refused requests are answered per RFC 6750: 401 with a bare Bearer
// challenge when no token was sent, 400 invalid_request for a malformed
// Authorization header, 401 invalid_token for a bad token (the description
// says why without echoing it), 403 insufficient_scope with the scope
// attribute for a missing permission, and 503 with Retry-After while the
// tenant's keys cannot be loaded. Every error is an *Error wrapping one of
// the Err* reasons, for errors.Is and errors.As.
//
// Key refresh is bounded: metadata and keys are reloaded hourly; a token with
// an unknown key ID can cause at most one fetch per KeyMissRefreshInterval
// (5 s) whatever the request rate; a service starts even while Entra is
// unreachable and loads keys when it comes back. See the README for the full
// policy and for what is deliberately not validated.
//
// For tests, the entratest subpackage is a fake Entra tenant on loopback.
package middleware
