package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/entragate/entragate/claims"
	"github.com/entragate/entragate/examples/internal/env"
	"github.com/entragate/entragate/middleware/entratest"
)

// entraAnswers stands in for Entra's token endpoint on on-behalf-of
// requests, with a canned answer; every other request goes to the fake
// tenant.
type entraAnswers struct {
	next   http.RoundTripper
	status int
	body   string
}

func (e *entraAnswers) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/token") {
		b, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(b))
		if strings.Contains(string(b), "on_behalf_of") {
			return &http.Response{StatusCode: e.status, Header: http.Header{"Content-Type": {"application/json"}},
				Body: io.NopCloser(strings.NewReader(e.body)), Request: r}, nil
		}
	}
	return e.next.RoundTrip(r)
}

const stepUpClaims = `{"access_token":{"acrs":{"essential":true,"value":"c1"}}}`

// What the middle tier answers when Entra refuses its on-behalf-of
// request, and when the downstream API refuses its token: a challenge the
// client can act on where only the user can help, 401 where the caller's
// token can never be exchanged, 503 where trying again may help; never a
// 500.
func TestMiddleTierRefusals(t *testing.T) {
	for _, v := range variables {
		t.Setenv(v, "")
	}
	ctx := context.Background()
	cfg, off, mid, err := startOffline(ctx, env.New(variables...), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer off.Close()
	entra := &entraAnswers{next: cfg.client.Transport}
	cfg.client = &http.Client{Transport: entra, Timeout: 30 * time.Second}
	var downstream http.HandlerFunc
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { downstream(w, r) }))
	defer down.Close()
	cfg.downstreamURL = down.URL
	s, err := serve(ctx, slog.New(slog.DiscardHandler), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tenant := off.Tenant
	token := tenant.AccessToken(entratest.Audience(mid.ID), entratest.Scopes(middleScope), entratest.ClientApp(off.WebApp.ClientID))
	issued := `{"token_type":"Bearer","access_token":"downstream-token","expires_in":3600,"ext_expires_in":3600}`
	challenge := `Bearer realm="", error="insufficient_claims", claims="` + base64.StdEncoding.EncodeToString([]byte(stepUpClaims)) + `"`
	tests := []struct {
		name         string
		status       int    // Entra's answer to the on-behalf-of request
		body         string // its body
		downstream   http.HandlerFunc
		want         int
		wantClaims   string // the claims challenge's claims, for 401 insufficient_claims
		wantRetry    bool
		wantAuthCode string // the WWW-Authenticate error
	}{
		{name: "interaction required, with claims", status: 400,
			body: `{"error":"interaction_required","error_codes":[50076],"suberror":"basic_action","claims":` + jsonQuote(stepUpClaims) + `}`,
			want: 401, wantClaims: stepUpClaims, wantAuthCode: "insufficient_claims"},
		{name: "consent required", status: 400, body: `{"error":"invalid_grant","error_codes":[65001],"suberror":"consent_required"}`,
			want: 401, wantClaims: "{}", wantAuthCode: "insufficient_claims"},
		{name: "the assertion expired within the clock skew", status: 400, body: `{"error":"invalid_grant","error_codes":[500133]}`,
			want: 401, wantAuthCode: "invalid_token"},
		{name: "the grant was revoked", status: 400, body: `{"error":"invalid_grant","error_codes":[50173]}`,
			want: 401, wantAuthCode: "invalid_token"},
		{name: "Entra failing", status: 500, body: `{"error":"temporarily_unavailable","error_codes":[90033]}`,
			want: 503, wantRetry: true},
		{name: "the downstream API asks for a step-up", status: 200, body: issued, downstream: func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("WWW-Authenticate", challenge)
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":"insufficient_claims"}`))
		}, want: 401, wantClaims: stepUpClaims, wantAuthCode: "insufficient_claims"},
		{name: "the downstream API failing", status: 200, body: issued, downstream: func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusInternalServerError)
		}, want: 502},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			entra.status, entra.body, downstream = tc.status, tc.body, tc.downstream
			req, _ := http.NewRequest(http.MethodGet, s.URL+"/chain", nil)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			h := resp.Header.Get("WWW-Authenticate")
			if resp.StatusCode != tc.want || tc.wantRetry != (resp.Header.Get("Retry-After") != "") ||
				tc.wantAuthCode != "" && !strings.Contains(h, `error="`+tc.wantAuthCode+`"`) {
				t.Fatalf("%d, Retry-After %q, WWW-Authenticate %q", resp.StatusCode, resp.Header.Get("Retry-After"), h)
			}
			if tc.wantClaims != "" {
				ch, err := claims.ParseClaimsChallenge(resp.Header.Values("WWW-Authenticate")...)
				if err != nil || ch.Claims != tc.wantClaims {
					t.Errorf("claims challenge %q: %+v %v, want %s", h, ch, err, tc.wantClaims)
				}
			}
		})
	}
}

func jsonQuote(s string) string { return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"` }

// Offline, the fake tenant's certificate the printed environment names is
// this run's own, and gone when the middle tier stops.
func TestOfflineCertificateIsRemoved(t *testing.T) {
	for _, v := range variables {
		t.Setenv(v, "")
	}
	s, err := start(context.Background(), slog.New(slog.DiscardHandler), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	s.printOfflineHelp(&out)
	_, rest, ok := strings.Cut(out.String(), "SSL_CERT_FILE=")
	file, _, _ := strings.Cut(rest, " ")
	if _, err := os.Stat(file); !ok || err != nil {
		s.Close()
		t.Fatalf("certificate %q: %v\n%s", file, err, out.String())
	}
	if filepath.Dir(file) == os.TempDir() {
		t.Errorf("%s is shared by every run", file)
	}
	s.Close()
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Errorf("%s still exists after Close: %v", file, err)
	}
}
