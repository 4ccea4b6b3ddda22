package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/entragate/entragate/claims"
	"github.com/entragate/entragate/examples/internal/demo"
	"github.com/entragate/entragate/examples/internal/demotest"
	"github.com/entragate/entragate/examples/secure-data/api"
	"github.com/entragate/entragate/middleware"
	"github.com/entragate/entragate/middleware/entratest"
)

func TestSecureDataRoutes(t *testing.T) {
	tenant := entratest.NewTenant(t)
	srv := demotest.Serve(t, tenant, api.Routes)

	tests := []struct {
		name, path, token string
		status            int
		message           string
		caller            string
	}{
		{"health is public", "/healthz", "", 200, "", ""},
		{"ready once keys are loaded", "/readyz", "", 200, "", ""},
		{"user with the scope", "/secure-data", tenant.AccessToken(entratest.Scopes(demo.ReadScope)), 200, "Hello Ada Lovelace, this is protected data.", "user"},
		{"v1 user with the scope", "/secure-data", tenant.AccessToken(entratest.V1(), entratest.Scopes(demo.ReadScope)), 200, "Hello Ada Lovelace, this is protected data.", "user"},
		{"daemon with the role", "/secure-data", tenant.AppToken(entratest.Roles(demo.ReadRole)), 200, "Hello app " + tenant.DaemonApp + ", this is protected data.", "app"},
		{"user without the scope", "/secure-data", tenant.AccessToken(), 403, "", ""},
		{"daemon without the role", "/secure-data", tenant.AppToken(entratest.Roles("Other")), 403, "", ""},
		{"no token", "/secure-data", "", 401, "", ""},
		{"ID token", "/secure-data", tenant.IDToken(), 401, "", ""},
		{"me with any valid token", "/me", tenant.AccessToken(), 200, "", "user"},
		{"me without a token", "/me", "", 401, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, raw := demotest.Get(t, srv.URL+tc.path, tc.token)
			var body struct {
				Message string `json:"message"`
				Caller  struct {
					Type string `json:"type"`
				} `json:"caller"`
				Error string `json:"error"`
			}
			if err := json.Unmarshal(raw, &body); err != nil {
				t.Fatal(err)
			}
			if status != tc.status || body.Message != tc.message || body.Caller.Type != tc.caller {
				t.Errorf("got %d %+v, want %d %q %q", status, body, tc.status, tc.message, tc.caller)
			}
		})
	}
}

// fromEnv configures the sample from the environment, as main does, and
// starts its Authenticator; both are closed when the test ends.
func fromEnv(t *testing.T) (*demo.Setup, *middleware.Authenticator) {
	t.Helper()
	setup, err := demo.FromEnv(&bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(setup.Close)
	auth, err := middleware.New(t.Context(), setup.Config)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { auth.Close() })
	return setup, auth
}

// TestOfflineModePrintsWorkingCurlCommands starts the sample as a new user
// would (no configuration) and runs every printed curl command.
func TestOfflineModePrintsWorkingCurlCommands(t *testing.T) {
	clearEnv(t)
	setup, auth := fromEnv(t)
	if setup.Tenant == nil {
		t.Fatal("no configuration must mean offline mode")
	}
	srv := httptest.NewServer(api.Routes(auth))
	t.Cleanup(srv.Close)

	var out bytes.Buffer
	demo.PrintOfflineHelp(&out, setup.Tenant, srv.URL)
	curl := regexp.MustCompile(`^curl -i(?: -H "Authorization: (Bearer [^"]+)")? (\S+)$`)
	wantStatus := []int{200, 200, 200, 403, 401, 401, 200, 403, 200}
	var got []int
	var challenges []string
	for _, line := range strings.Split(out.String(), "\n") {
		if !strings.HasPrefix(line, "curl ") {
			continue
		}
		m := curl.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("printed command is not a plain curl line: %q", line)
		}
		req, _ := http.NewRequest(http.MethodGet, m[2], nil)
		if m[1] != "" {
			req.Header.Set("Authorization", m[1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		got = append(got, resp.StatusCode)
		challenges = append(challenges, resp.Header.Get("WWW-Authenticate"))
	}
	if len(got) != len(wantStatus) {
		t.Fatalf("ran %d commands (%v), want %d", len(got), got, len(wantStatus))
	}
	for i := range got {
		if got[i] != wantStatus[i] {
			t.Errorf("command %d answered %d, want %d (all: %v)", i+1, got[i], wantStatus[i], got)
		}
	}
	// The step-up route's 401 is Entra's claims challenge for c1, naming
	// the fake tenant as a real single-tenant API names its own.
	ch, err := claims.ParseClaimsChallenge(challenges[5])
	want := `{"access_token":{"acrs":{"essential":true,"value":"c1"}}}`
	if err != nil || ch.Claims != want || ch.Realm != setup.Tenant.ID ||
		ch.AuthorizationURI != setup.Tenant.Server().URL+"/"+setup.Tenant.ID+"/oauth2/authorize" {
		t.Errorf("the confidential route's challenge %q: %+v, %v", challenges[5], ch, err)
	}
}

// Configuration mistakes are errors that name the environment variable,
// never a silent fall-back to the fake tenant or a Config field name.
func TestConfigurationMistakesNameTheVariable(t *testing.T) {
	tid, cid := entratest.NewGUID(), entratest.NewGUID()
	tests := []struct {
		name    string
		env     map[string]string
		mention string
	}{
		{"authority host alone", map[string]string{"AZURE_AUTHORITY_HOST": "https://login.microsoftonline.us"}, "set AZURE_TENANT_ID and AZURE_CLIENT_ID too"},
		{"tenant without client", map[string]string{"AZURE_TENANT_ID": tid}, "AZURE_CLIENT_ID is not set"},
		{"client without tenant", map[string]string{"AZURE_CLIENT_ID": cid}, "AZURE_TENANT_ID is not set"},
		{"misspelled tenant variable", map[string]string{"AZURE_TENANTID": tid, "AZURE_CLIENT_ID": cid}, "AZURE_TENANTID is set, but this sample does not read it (did you mean AZURE_TENANT_ID?)"},
		{"misspelled variables, offline", map[string]string{"AZURE_TENANTID": tid, "AZURE_CLIENTID": cid}, "did you mean"},
		{"client not a GUID", map[string]string{"AZURE_TENANT_ID": tid, "AZURE_CLIENT_ID": "api://orders"}, `AZURE_CLIENT_ID="api://orders" is not a GUID`},
		{"tenant neither GUID nor domain", map[string]string{"AZURE_TENANT_ID": "contoso", "AZURE_CLIENT_ID": cid}, `AZURE_TENANT_ID="contoso"`},
		{"authority host with a path", map[string]string{"AZURE_TENANT_ID": tid, "AZURE_CLIENT_ID": cid, "AZURE_AUTHORITY_HOST": "https://login.microsoftonline.us/" + tid}, "AZURE_AUTHORITY_HOST"},
		{"boolean that is not true or false", map[string]string{"AZURE_TENANT_ID": "common", "AZURE_CLIENT_ID": cid, "ALLOW_ANY_TENANT": "yes"}, `ALLOW_ANY_TENANT="yes": write true or false`},
		{"allowed tenant not a GUID", map[string]string{"AZURE_TENANT_ID": "organizations", "AZURE_CLIENT_ID": cid, "ALLOWED_TENANT_IDS": "contoso.com"}, "ALLOWED_TENANT_IDS"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clearEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			setup, err := demo.FromEnv(&bytes.Buffer{})
			if err == nil {
				setup.Close()
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("error %q, want it to mention %q", err, tc.mention)
			}
			for _, field := range []string{"ClientID", "TenantID", "AuthorityHost"} {
				if strings.Contains(err.Error(), field) {
					t.Errorf("error %q names the Config field %s, not the variable", err, field)
				}
			}
		})
	}
	// What the Azure tools set for themselves is no mistake.
	clearEnv(t)
	t.Setenv("AZURE_SUBSCRIPTION_ID", entratest.NewGUID())
	t.Setenv("AZURE_CORE_OUTPUT", "json")
	// Nor what a platform sets for the Azure SDK's credentials (AKS
	// workload identity, for one).
	t.Setenv("AZURE_FEDERATED_TOKEN_FILE", "/var/run/secrets/azure/tokens/azure-identity-token")
	t.Setenv("AZURE_CLIENT_SECRET", "not read by an API")
	if setup, err := demo.FromEnv(&bytes.Buffer{}); err != nil {
		t.Errorf("with the Azure tools' and SDK's own variables set: %v", err)
	} else {
		setup.Close()
	}
}

func TestReadinessFollowsTheSigningKeys(t *testing.T) {
	tenant := entratest.NewTenant(t)
	tenant.Server().SetFault(entratest.All, entratest.Unavailable)
	srv := demotest.Serve(t, tenant, api.Routes, func(c *middleware.Config) { c.MinLoadInterval = time.Second })
	status := func(path string) int {
		st, _ := demotest.Get(t, srv.URL+path, "")
		return st
	}
	if got := status("/readyz"); got != 503 {
		t.Errorf("readyz with Entra down: %d, want 503", got)
	}
	// It names the documents that are not ready, not why: the reasons
	// (internal URLs, library messages) go to the log.
	_, body := demotest.Get(t, srv.URL+"/readyz", "")
	var ready struct {
		Sources []map[string]any `json:"sources"`
	}
	if err := json.Unmarshal(body, &ready); err != nil || len(ready.Sources) != 2 {
		t.Fatalf("readyz body %s: want the two documents", body)
	}
	for _, src := range ready.Sources {
		if src["ready"] != false || src["last_failure"] == nil || src["version"] == nil {
			t.Errorf("readyz document %v: want not ready, failing since a time", src)
		}
	}
	if strings.Contains(string(body), "GET ") || strings.Contains(string(body), "unexpected status") || strings.Contains(string(body), "openid-configuration") {
		t.Errorf("readyz body leaks the load errors: %s", body)
	}
	if got := status("/healthz"); got != 200 {
		t.Errorf("healthz with Entra down: %d, want 200 (the process is alive)", got)
	}
	tenant.Server().SetFault(entratest.All, entratest.NoFault)
	deadline := time.Now().Add(5 * time.Second)
	for status("/readyz") != 200 {
		if time.Now().After(deadline) {
			t.Fatal("not ready after Entra came back")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// clearEnv unsets every variable a test may have inherited that a sample
// reads, or would refuse as unknown.
func clearEnv(t *testing.T) {
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "AZURE_") {
			t.Setenv(name, "")
		}
	}
	for _, v := range []string{"ADDR", "ALLOWED_TENANT_IDS", "ALLOW_ANY_TENANT", "ALLOW_PERSONAL_ACCOUNTS"} {
		t.Setenv(v, "")
	}
}

// A deployment that forgot its environment must not become a door: offline
// mode listens on loopback only, and trusts keys no one else has.
func TestOfflineModeCannotBeTurnedIntoADoor(t *testing.T) {
	clearEnv(t)
	setup, auth := fromEnv(t)
	if setup.Addr != "127.0.0.1:8080" {
		t.Errorf("offline default address %q, want 127.0.0.1:8080", setup.Addr)
	}
	if _, err := auth.Validate(t.Context(), setup.Tenant.AccessToken(entratest.Scopes(demo.ReadScope))); err != nil {
		t.Fatalf("token of the offline tenant: %v", err)
	}
	// Every key published in this repository, used to sign a token that is
	// otherwise exactly what the offline tenant mints.
	pool := entratest.NewServer()
	defer pool.Close()
	for _, k := range append([]*entratest.Key{pool.SigningKey()}, keysOf(pool, 15)...) {
		tok := setup.Tenant.AccessToken(entratest.Scopes(demo.ReadScope), entratest.SignedWith(k))
		if _, err := auth.Validate(t.Context(), tok); !errors.Is(err, middleware.ErrUnknownSigningKey) {
			t.Fatalf("token signed with a key published in the repository: %v, want ErrUnknownSigningKey", err)
		}
	}
	var help bytes.Buffer
	demo.PrintOfflineHelp(&help, setup.Tenant, "http://127.0.0.1:8080")
	if !strings.Contains(help.String(), "trusts a local fake Entra tenant") {
		t.Errorf("offline banner does not say the API trusts a fake tenant:\n%s", help.String())
	}

	for _, addr := range []string{":8080", "0.0.0.0:8080", "[::]:8080", "192.0.2.1:8080", "example.com:8080"} {
		t.Setenv("ADDR", addr)
		if s, err := demo.FromEnv(&bytes.Buffer{}); err == nil {
			s.Close()
			t.Errorf("offline mode accepted ADDR=%s", addr)
		} else if !strings.Contains(err.Error(), "loopback") {
			t.Errorf("ADDR=%s: %v, want an error explaining loopback only", addr, err)
		}
	}
}

func keysOf(s *entratest.Server, n int) []*entratest.Key {
	var out []*entratest.Key
	for range n {
		out = append(out, s.NewKey())
	}
	return out
}

// AZURE_TENANT_ID=organizations makes a multi-tenant API, which must say
// which tenants it admits.
func TestMultiTenantModeNeedsAnAdmissionList(t *testing.T) {
	srv := entratest.NewServer()
	t.Cleanup(srv.Close)
	clientID := entratest.NewGUID()
	allowed := srv.NewTenant(entratest.WithClientID(clientID))
	other := srv.NewTenant(entratest.WithClientID(clientID))
	clearEnv(t)
	t.Setenv("AZURE_TENANT_ID", "organizations")
	t.Setenv("AZURE_CLIENT_ID", clientID)
	t.Setenv("AZURE_AUTHORITY_HOST", srv.URL)
	if _, err := demo.FromEnv(&bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "ALLOWED_TENANT_IDS") {
		t.Fatalf("multi-tenant without an admission list: %v, want an error naming ALLOWED_TENANT_IDS", err)
	}

	t.Setenv("ALLOWED_TENANT_IDS", " "+allowed.ID+" , "+entratest.NewGUID())
	_, auth := fromEnv(t)
	api := httptest.NewServer(api.Routes(auth))
	t.Cleanup(api.Close)
	for _, tc := range []struct {
		name   string
		token  string
		status int
	}{
		{"allowed tenant, v2", allowed.AccessToken(entratest.Scopes(demo.ReadScope)), 200},
		{"allowed tenant, v1", allowed.AccessToken(entratest.V1(), entratest.Scopes(demo.ReadScope)), 200},
		{"allowed tenant's daemon", allowed.AppToken(entratest.Roles(demo.ReadRole)), 200},
		{"other tenant", other.AccessToken(entratest.Scopes(demo.ReadScope)), 401},
		{"other tenant's daemon", other.AppToken(entratest.Roles(demo.ReadRole)), 401},
		{"allowed tid under the other tenant's issuer", other.AccessToken(entratest.Scopes(demo.ReadScope), entratest.Claim("tid", allowed.ID)), 401},
	} {
		if status, body := demotest.Get(t, api.URL+"/secure-data", tc.token); status != tc.status {
			t.Errorf("%s: %d %s, want %d", tc.name, status, body, tc.status)
		}
	}

	t.Setenv("ALLOWED_TENANT_IDS", "")
	t.Setenv("ALLOW_ANY_TENANT", "true")
	_, anyAuth := fromEnv(t)
	if _, err := anyAuth.Validate(t.Context(), other.AccessToken()); err != nil {
		t.Errorf("ALLOW_ANY_TENANT=true: %v", err)
	}

	t.Setenv("AZURE_TENANT_ID", allowed.ID)
	if _, err := demo.FromEnv(&bytes.Buffer{}); err == nil {
		t.Error("ALLOW_ANY_TENANT with a single tenant was accepted")
	}
}
