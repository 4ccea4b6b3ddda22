package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/entragate/entragate/claims"
	"github.com/entragate/entragate/middleware"
	"github.com/entragate/entragate/middleware/entratest"
)

func TestParseRules(t *testing.T) {
	f, err := os.Open("rules.conf")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	routes, err := parseRules(f)
	if err != nil || len(routes) != 7 {
		t.Fatalf("rules.conf: %d routes, %v", len(routes), err)
	}
	pay := routes[4]
	user := &claims.Claims{Scopes: []string{"Payments.Write"}}
	if pay.Path != "/api/payments" || pay.Public || !errors.Is(pay.Rule.Check(context.Background(), user), middleware.ErrInsufficientClaims) {
		t.Errorf("payments route %+v", pay)
	}
	user.AuthContexts = []string{"c1"}
	if err := pay.Rule.Check(context.Background(), user); err != nil {
		t.Errorf("payments after a step-up: %v", err)
	}
	orders := routes[2]
	if strings.Join(orders.Methods, ",") != "GET,HEAD" || orders.Rule.Check(context.Background(), &claims.Claims{Roles: []string{"Orders.Read.All"}}) != nil {
		t.Errorf("orders route %+v", orders)
	}
	for name, text := range map[string]string{
		"too few fields":   "GET /x",
		"unknown kind":     "* /x group:admins",
		"empty name":       "* /x scope:",
		"bad scope name":   `* /x scope:a"b`,
		"full scope URI":   "* /x scope:api://x/Orders.Read",
		"nothing":          "# only a comment\n",
		"public and scope": "* /x public scope:a",
	} {
		if _, err := parseRules(strings.NewReader(text)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// Configuration mistakes name their variable.
func TestGatewayConfigurationMistakes(t *testing.T) {
	for name, vars := range map[string]map[string]string{
		"unknown gateway":  {"GATEWAY": "haproxy"},
		"bad network":      {"TRUSTED_NETWORKS": "localhost"},
		"no rules file":    {"RULES_FILE": "missing.conf"},
		"short secret":     {"GATEWAY_SECRET": "abc"},
		"prefix on nginx":  {"ENVOY_PATH_PREFIX": "/authz"},
		"envoy, no prefix": {"GATEWAY": "envoy"},
		"envoy, prefix /":  {"GATEWAY": "envoy", "ENVOY_PATH_PREFIX": "/"},
		"envoy, probes":    {"GATEWAY": "envoy", "ENVOY_PATH_PREFIX": "/_entragate"},
		"rules file empty": {"RULES_FILE": os.DevNull},
	} {
		t.Run(name, func(t *testing.T) {
			for _, v := range append(append([]string{}, gatewayVariables...), "AZURE_TENANT_ID", "AZURE_CLIENT_ID", "ADDR") {
				t.Setenv(v, "")
			}
			t.Setenv("ADDR", "127.0.0.1:0")
			for k, v := range vars {
				t.Setenv(k, v)
			}
			if s, err := start(context.Background(), io.Discard); err == nil {
				s.Close()
				t.Fatal("accepted")
			}
		})
	}
}

// Offline, the service answers a check as the rules say, and its probes
// are its own.
func TestOfflineService(t *testing.T) {
	for _, v := range append(append([]string{}, gatewayVariables...), "AZURE_TENANT_ID", "AZURE_CLIENT_ID") {
		t.Setenv(v, "")
	}
	t.Setenv("ADDR", "127.0.0.1:0")
	s, err := start(context.Background(), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var out strings.Builder
	printOfflineHelp(&out, s.setup.Tenant, s.URL)
	if !strings.Contains(out.String(), "export READER=ey") {
		t.Errorf("help: %s", out.String())
	}
	check := func(uri string) int {
		req, _ := http.NewRequest(http.MethodGet, s.URL+"/check", nil)
		req.Header.Set("X-Original-Method", "GET")
		req.Header.Set("X-Original-URI", uri)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if check("/healthz") != 200 || check("/api/orders") != 401 {
		t.Errorf("checks: %d %d", check("/healthz"), check("/api/orders"))
	}
	for _, probe := range []string{"/_entragate/healthz", "/_entragate/readyz"} {
		resp, err := http.Get(s.URL + probe)
		if err != nil || resp.StatusCode != 200 {
			t.Errorf("%s: %v %v", probe, err, resp)
		} else {
			resp.Body.Close()
		}
	}
}

// With a tenant configured (here a fake one on loopback, named as a real
// one is: AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_AUTHORITY_HOST), the
// service checks that tenant's tokens and starts no fake of its own.
func TestRealTenantConfiguration(t *testing.T) {
	tenant := entratest.NewTenant(t)
	for _, v := range append(append([]string{}, gatewayVariables...), "ADDR") {
		t.Setenv(v, "")
	}
	t.Setenv("ADDR", "127.0.0.1:0")
	t.Setenv("AZURE_TENANT_ID", tenant.ID)
	t.Setenv("AZURE_CLIENT_ID", tenant.ClientID)
	t.Setenv("AZURE_AUTHORITY_HOST", tenant.Server().URL)
	s, err := start(context.Background(), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.setup.Tenant != nil {
		t.Fatal("a fake tenant was started beside the configured one")
	}
	check := func(token string) int {
		req, _ := http.NewRequest(http.MethodGet, s.URL+"/check", nil)
		req.Header.Set("X-Original-Method", "GET")
		req.Header.Set("X-Original-URI", "/api/orders/1")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := check(tenant.AccessToken(entratest.Scopes("Orders.Read"))); got != 200 {
		t.Errorf("the tenant's reader: %d, want 200", got)
	}
	other := entratest.NewTenant(t)
	if got := check(other.AccessToken(entratest.Scopes("Orders.Read"))); got != 401 {
		t.Errorf("another tenant's token: %d, want 401", got)
	}
}

// Behind Envoy every path of the service is a check, behind the prefix;
// the probes answer only outside it, and a check is judged as sent, never
// cleaned or redirected first.
func TestEnvoyChecksAreNotProbes(t *testing.T) {
	for _, v := range append(append([]string{}, gatewayVariables...), "AZURE_TENANT_ID", "AZURE_CLIENT_ID") {
		t.Setenv(v, "")
	}
	t.Setenv("ADDR", "127.0.0.1:0")
	t.Setenv("GATEWAY", "envoy")
	t.Setenv("ENVOY_PATH_PREFIX", "/ext-authz")
	s, err := start(context.Background(), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for path, want := range map[string]int{
		"/_entragate/healthz":           200, // the probe
		"/ext-authz/_entragate/healthz": 401, // a check of the original /_entragate/healthz
		"/ext-authz/healthz":            200, // public in rules.conf
		"/ext-authz//api/orders":        403, // an empty segment: judged, refused
		"/ext-authz/healthz/../api":     403, // a dot segment, refused
	} {
		req, _ := http.NewRequest(http.MethodGet, s.URL+path, nil)
		req.URL.Opaque = path // sent as written
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s: %d, want %d", path, resp.StatusCode, want)
		}
	}
}
