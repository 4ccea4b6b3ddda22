// Command secure-data is the sample API protected by entragate, on chi;
// its routes, with RequireAuth and the route guards, are in package api.
//
//	GET /healthz      public liveness probe
//	GET /readyz       public readiness probe: 503 until Entra's signing keys are loaded
//	GET /secure-data               scope SecureData.Read (users) or app role SecureData.Read.All (daemons)
//	GET /secure-data/confidential  also authentication context c1 (a step-up); 401 with a claims challenge without it
//	GET /me                        any valid access token; echoes its typed claims
//
// Configure it with AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_AUTHORITY_HOST
// (optional, for sovereign clouds or a test tenant) and ADDR (default :8080);
// AZURE_TENANT_ID=organizations or common with ALLOWED_TENANT_IDS for a
// multi-tenant API. With none of them set it runs offline, on loopback,
// against a fake tenant with keys generated at start-up, and prints curl
// commands with valid tokens.
package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"

	"github.com/entragate/entragate/examples/internal/demo"
	"github.com/entragate/entragate/examples/secure-data/api"
	entragate "github.com/entragate/entragate/middleware"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "secure-data:", err)
		os.Exit(1)
	}
}

func run() error {
	// The configuration from AZURE_TENANT_ID and AZURE_CLIENT_ID (or, with
	// neither, a fake tenant on loopback).
	setup, err := demo.FromEnv(os.Stderr)
	if err != nil {
		return err
	}
	defer setup.Close()

	// One call: the tenant's metadata and keys load in the background,
	// and an unreachable Entra is no error (requests get 503 until it
	// answers); only an invalid configuration is.
	auth, err := entragate.New(context.Background(), setup.Config)
	if err != nil {
		return err
	}
	defer auth.Close()

	err = setup.Serve("secure-data", auth, api.Routes(auth))
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}
