// Package api is the sample /secure-data API, protected by entragate on
// chi. The command in the parent directory serves it; the web app and
// daemon examples run it in-process in offline mode.
package api

import (
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/entragate/entragate/examples/internal/demo"
	entragate "github.com/entragate/entragate/middleware"
)

// Routes serves the sample API:
//
//	GET /healthz      public liveness probe
//	GET /readyz       public readiness probe: 503 until Entra's signing keys are loaded
//	GET /secure-data               scope SecureData.Read (users) or app role SecureData.Read.All (daemons)
//	GET /secure-data/confidential  scope SecureData.Read and authentication context c1: users who
//	                               stepped up; others get Entra's claims challenge (401 insufficient_claims)
//	GET /me                        any valid access token; echoes its typed claims
func Routes(auth *entragate.Authenticator) http.Handler {
	r := chi.NewRouter()
	r.Get("/healthz", demo.Healthz)
	r.Get("/readyz", demo.Readyz(auth))
	r.Group(func(r chi.Router) {
		r.Use(auth.RequireAuth)
		r.With(entragate.RequireScopeOrRole(
			[]string{demo.ReadScope}, []string{demo.ReadRole},
		)).Get("/secure-data", demo.SecureData)
		r.With(entragate.Require(entragate.All(
			entragate.AnyScope(demo.ReadScope),
			entragate.AuthContext(demo.StepUpContext),
		))).Get("/secure-data/confidential", demo.Confidential)
		r.Get("/me", demo.Me)
	})
	return r
}
