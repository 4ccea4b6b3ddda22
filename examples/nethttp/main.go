// Command nethttp protects the same sample API as examples/secure-data with
// nothing but the standard library's http.ServeMux.
package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"

	"github.com/entragate/entragate/examples/internal/demo"
	"github.com/entragate/entragate/middleware"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "nethttp:", err)
		os.Exit(1)
	}
}

func run() error {
	setup, err := demo.FromEnv(os.Stderr) // AZURE_TENANT_ID, AZURE_CLIENT_ID, or offline
	if err != nil {
		return err
	}
	defer setup.Close()
	auth, err := middleware.New(context.Background(), setup.Config)
	if err != nil {
		return err
	}
	defer auth.Close()

	err = setup.Serve("nethttp", auth, routes(auth))
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// routes is the sample API on a ServeMux: RequireAuth wraps each protected
// handler, the guard inside it.
func routes(auth *middleware.Authenticator) http.Handler {
	requireRead := middleware.RequireScopeOrRole([]string{demo.ReadScope}, []string{demo.ReadRole})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", demo.Healthz)
	mux.HandleFunc("GET /readyz", demo.Readyz(auth))
	mux.Handle("GET /secure-data", auth.RequireAuth(requireRead(http.HandlerFunc(demo.SecureData))))
	mux.Handle("GET /me", auth.RequireAuth(http.HandlerFunc(demo.Me)))
	return mux
}
