// Command secure-data is the sample API protected by entragate, on chi.
//
//	GET /healthz      public liveness probe
//	GET /readyz       public readiness probe: 503 until Entra's signing keys are loaded
//	GET /secure-data  scope SecureData.Read (users) or app role SecureData.Read.All (daemons)
//	GET /me           any valid access token; echoes its typed claims
//
// Configure it with AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_AUTHORITY_HOST
// (optional, for sovereign clouds or a test tenant) and ADDR (default :8080).
// With none of them set it runs offline against an embedded fake tenant and
// prints curl commands with valid tokens.
package main

import (
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/entragate/entragate/examples/internal/demo"
	"github.com/entragate/entragate/middleware"
)

func main() { demo.Main("secure-data", routes) }

func routes(auth *middleware.Authenticator) http.Handler {
	r := chi.NewRouter()
	r.Get("/healthz", demo.Healthz)
	r.Get("/readyz", demo.Readyz(auth))
	r.Group(func(r chi.Router) {
		r.Use(auth.RequireAuth)
		r.With(middleware.RequireScopeOrRole(
			[]string{demo.ReadScope}, []string{demo.ReadRole},
		)).Get("/secure-data", demo.SecureData)
		r.Get("/me", demo.Me)
	})
	return r
}
