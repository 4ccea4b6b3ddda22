package main

import (
	"testing"

	"github.com/entragate/entragate/examples/internal/demo"
	"github.com/entragate/entragate/examples/internal/demotest"
	"github.com/entragate/entragate/middleware/entratest"
)

func TestServeMuxRoutes(t *testing.T) {
	tenant := entratest.NewTenant(t)
	srv := demotest.Serve(t, tenant, routes)
	for _, tc := range []struct {
		path, token string
		status      int
	}{
		{"/healthz", "", 200},
		{"/readyz", "", 200},
		{"/secure-data", tenant.AccessToken(entratest.Scopes(demo.ReadScope)), 200},
		{"/secure-data", tenant.AppToken(entratest.Roles(demo.ReadRole)), 200},
		{"/secure-data", tenant.AccessToken(), 403},
		{"/secure-data", "", 401},
		{"/me", tenant.AccessToken(), 200},
		{"/me", tenant.IDToken(), 401},
	} {
		if status, body := demotest.Get(t, srv.URL+tc.path, tc.token); status != tc.status {
			t.Errorf("%s: %d, want %d: %s", tc.path, status, tc.status, body)
		}
	}
}
