package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// daemonVariables are every variable the daemon reads; tests clear them
// all so the machine's environment cannot leak in.
var daemonVariables = []string{"AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET",
	"AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_CLIENT_CERTIFICATE_PASSWORD", "AZURE_FEDERATED_TOKEN_FILE",
	"AZURE_AUTHORITY_HOST", "API_SCOPE", "API_URL", "OFFLINE_CREDENTIAL"}

func clearEnv(t *testing.T) {
	t.Helper()
	for _, v := range daemonVariables {
		t.Setenv(v, "")
	}
}

// Offline, the daemon gets an app-only token with MSAL, with each kind
// of credential a platform gives it, and the API greets it as an app
// with the SecureData.Read.All role. The fake tenant checks the
// certificate's assertion (audience, lifetime, replay) and the federated
// token's issuer and subject against the registration, so a wrong
// credential would end in an error here.
func TestDaemonCallsTheAPI(t *testing.T) {
	for _, tc := range []struct{ credential, announces string }{
		{"", "credential: client secret"},
		{"secret", "credential: client secret"},
		{"certificate", "credential: certificate "},
		{"federated", "credential: federated token "},
	} {
		t.Run("credential="+tc.credential, func(t *testing.T) {
			clearEnv(t)
			t.Setenv("OFFLINE_CREDENTIAL", tc.credential)
			var out strings.Builder
			if err := run(t.Context(), &out); err != nil {
				t.Fatalf("%v\n%s", err, out.String())
			}
			for _, want := range []string{tc.announces, "200 OK", `"type":"app"`, "SecureData.Read.All", "this is protected data"} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("output lacks %q:\n%s", want, out.String())
				}
			}
		})
	}
}

// The offline credential files are gone when the daemon is done: a
// private key does not stay behind in the temporary directory.
func TestOfflineCredentialFilesAreRemoved(t *testing.T) {
	clearEnv(t)
	t.Setenv("OFFLINE_CREDENTIAL", "certificate")
	var out strings.Builder
	if err := run(t.Context(), &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	_, after, ok := strings.Cut(out.String(), "credential: certificate ")
	if !ok {
		t.Fatalf("no certificate path in the output:\n%s", out.String())
	}
	file, _, _ := strings.Cut(after, ".\n")
	if _, err := os.Stat(filepath.Dir(file)); !os.IsNotExist(err) {
		t.Errorf("%s: %v, want it removed", filepath.Dir(file), err)
	}
}

// A configuration mistake names the variable, never falls back to
// offline mode.
func TestConfigurationMistakesNameTheVariable(t *testing.T) {
	const tenant, client = "72f988bf-86f1-41af-91ab-2d7cd011db47", "6e74172b-be56-4843-9ff4-e66a39bb12e3"
	missing := filepath.Join(t.TempDir(), "missing.pem")
	notPEM := filepath.Join(t.TempDir(), "not.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	app := func(extra map[string]string) map[string]string {
		m := map[string]string{"AZURE_TENANT_ID": tenant, "AZURE_CLIENT_ID": client, "API_SCOPE": "api://x/.default"}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	tests := []struct {
		name    string
		env     map[string]string
		mention string
	}{
		{"tenant alone", map[string]string{"AZURE_TENANT_ID": tenant}, "AZURE_CLIENT_ID is not set"},
		{"no credential", app(nil), "no credential: set AZURE_CLIENT_SECRET, AZURE_CLIENT_CERTIFICATE_PATH or AZURE_FEDERATED_TOKEN_FILE"},
		{"several credentials", app(map[string]string{"AZURE_CLIENT_SECRET": "s", "AZURE_FEDERATED_TOKEN_FILE": "/var/run/token"}), "not several"},
		{"password without certificate", app(map[string]string{"AZURE_CLIENT_SECRET": "s", "AZURE_CLIENT_CERTIFICATE_PASSWORD": "p"}), "AZURE_CLIENT_CERTIFICATE_PASSWORD is set without AZURE_CLIENT_CERTIFICATE_PATH"},
		{"certificate file missing", app(map[string]string{"AZURE_CLIENT_CERTIFICATE_PATH": missing}), "AZURE_CLIENT_CERTIFICATE_PATH"},
		{"certificate file not PEM", app(map[string]string{"AZURE_CLIENT_CERTIFICATE_PATH": notPEM}), "a PEM file with the certificate and its private key"},
		{"credential without app", map[string]string{"AZURE_FEDERATED_TOKEN_FILE": "/var/run/token"}, "AZURE_TENANT_ID is not set"},
		{"misspelled", map[string]string{"AZURE_CLIENTSECRET": "x"}, "did you mean AZURE_CLIENT_SECRET?"},
		{"unknown offline credential", map[string]string{"OFFLINE_CREDENTIAL": "password"}, `OFFLINE_CREDENTIAL="password"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clearEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			if err := run(t.Context(), &strings.Builder{}); err == nil || !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("%v, want an error mentioning %q", err, tc.mention)
			}
		})
	}
}
