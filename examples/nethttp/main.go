// Command nethttp protects the same sample API as examples/secure-data with
// nothing but the standard library's http.ServeMux.
package main

import (
	"net/http"

	"github.com/entragate/entragate/examples/internal/demo"
	"github.com/entragate/entragate/middleware"
)

func main() { demo.Main("nethttp", routes) }

func routes(auth *middleware.Authenticator) http.Handler {
	requireRead := middleware.RequireScopeOrRole([]string{demo.ReadScope}, []string{demo.ReadRole})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", demo.Healthz)
	mux.HandleFunc("GET /readyz", demo.Readyz(auth))
	mux.Handle("GET /secure-data", auth.RequireAuth(requireRead(http.HandlerFunc(demo.SecureData))))
	mux.Handle("GET /me", auth.RequireAuth(http.HandlerFunc(demo.Me)))
	return mux
}
