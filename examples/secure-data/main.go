// Command secure-data is the sample API protected by entragate, on chi; its
// routes are in package api.
//
//	GET /healthz      public liveness probe
//	GET /readyz       public readiness probe: 503 until Entra's signing keys are loaded
//	GET /secure-data  scope SecureData.Read (users) or app role SecureData.Read.All (daemons)
//	GET /me           any valid access token; echoes its typed claims
//
// Configure it with AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_AUTHORITY_HOST
// (optional, for sovereign clouds or a test tenant) and ADDR (default :8080);
// AZURE_TENANT_ID=organizations or common with ALLOWED_TENANT_IDS for a
// multi-tenant API. With none of them set it runs offline, on loopback,
// against a fake tenant with keys generated at start-up, and prints curl
// commands with valid tokens.
package main

import (
	"github.com/entragate/entragate/examples/internal/demo"
	"github.com/entragate/entragate/examples/secure-data/api"
)

func main() { demo.Main("secure-data", api.Routes) }
