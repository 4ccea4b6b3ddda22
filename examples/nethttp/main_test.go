package main

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/entragate/entragate/examples/internal/demo"
	"github.com/entragate/entragate/middleware"
	"github.com/entragate/entragate/middleware/entratest"
)

func TestServeMuxRoutes(t *testing.T) {
	tenant := entratest.NewTenant(t)
	auth, err := middleware.New(t.Context(), tenant.Config())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { auth.Close() })
	srv := httptest.NewServer(routes(auth))
	t.Cleanup(srv.Close)
	for _, tc := range []struct {
		path, token string
		status      int
	}{
		{"/healthz", "", 200},
		{"/secure-data", tenant.AccessToken(entratest.Scopes(demo.ReadScope)), 200},
		{"/secure-data", tenant.AppToken(entratest.Roles(demo.ReadRole)), 200},
		{"/secure-data", tenant.AccessToken(), 403},
		{"/secure-data", "", 401},
		{"/me", tenant.AccessToken(), 200},
	} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+tc.path, nil)
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s: %d, want %d", tc.path, resp.StatusCode, tc.status)
		}
	}
}
