package main

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/entragate/entragate/middleware"
	"github.com/entragate/entragate/middleware/entratest"
)

func TestTokenEndpointMintsValidTokens(t *testing.T) {
	srv, err := entratest.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	tenant := srv.NewTenant(entratest.WithTenantID(defaultTenantID), entratest.WithClientID(defaultClientID))
	srv.Handle("GET /dev/token", tokenHandler(tenant))
	auth, err := middleware.New(t.Context(), middleware.Config{
		ClientID: defaultClientID, Authorities: []middleware.Authority{middleware.EntraTenant(defaultTenantID).WithHost(srv.URL)},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { auth.Close() })

	tests := []struct {
		query   string
		status  int
		want    error
		appOnly bool
	}{
		{"kind=user&scopes=SecureData.Read", 200, nil, false},
		{"kind=user&version=1&scopes=A,B", 200, nil, false},
		{"kind=app&roles=SecureData.Read.All", 200, nil, true},
		{"kind=app", 200, middleware.ErrNotAccessToken, true},
		{"kind=id", 200, middleware.ErrIDToken, false},
		{"kind=refresh", 400, nil, false},
		{"", 200, nil, false},
		{"version=3", 400, nil, false},
		{"kind=user&version=", 400, nil, false},
		{"kind=app&scopes=SecureData.Write&roles=SecureData.Read.All", 400, nil, false},
		{"kind=user&acrs=c1&xms_cc=cp1", 200, nil, false},
		{"kind=app&roles=R&acrs=c1", 400, nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			resp, err := http.Get(srv.URL + "/dev/token?" + tc.query)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			if tc.status != 200 {
				return
			}
			c, err := auth.Validate(t.Context(), strings.TrimSpace(string(body)))
			if !errors.Is(err, tc.want) {
				t.Fatalf("Validate: %v, want %v", err, tc.want)
			}
			if err == nil && c.IsAppOnly() != tc.appOnly {
				t.Errorf("app-only %v, want %v", c.IsAppOnly(), tc.appOnly)
			}
			if err == nil && tc.appOnly && len(c.Scopes) != 0 {
				t.Errorf("app token carries scopes %v", c.Scopes)
			}
			if strings.Contains(tc.query, "acrs=c1") && (!c.HasAuthContext("c1") || !c.CanHandleClaimsChallenges()) {
				t.Errorf("asked for acrs and xms_cc: %v %v", c.AuthContexts, c.ClientCapabilities)
			}
			if tc.query == "" && (err != nil || !c.HasScope("SecureData.Read")) {
				t.Errorf("default token: %v, scopes %v; want the flags' default, a user token with SecureData.Read", err, c.Scopes)
			}
		})
	}
}

// The start-up flags and /dev/token share their defaults and their checks.
func TestFlagsAndEndpointAgree(t *testing.T) {
	if _, err := mint(nil, defaultRequest); err != nil {
		t.Errorf("the default request is refused: %v", err)
	}
	for _, bad := range []tokenRequest{
		{kind: "user", version: "3"},
		{kind: "user", version: "v2"},
		{kind: "robot", version: "2"},
		{kind: "app", version: "2", scopes: "Files.Read"},
	} {
		if _, err := mint(nil, bad); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}
