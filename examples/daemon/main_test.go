package main

import (
	"strings"
	"testing"
)

// Offline, the daemon gets an app-only token with MSAL and the API greets
// it as an app with the SecureData.Read.All role.
func TestDaemonCallsTheAPI(t *testing.T) {
	for _, v := range []string{"AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_AUTHORITY_HOST", "API_SCOPE", "API_URL"} {
		t.Setenv(v, "")
	}
	var out strings.Builder
	if err := run(t.Context(), &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{"200 OK", `"type":"app"`, "SecureData.Read.All", "this is protected data"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

// A configuration mistake names the variable, never falls back to
// offline mode.
func TestConfigurationMistakesNameTheVariable(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		mention string
	}{
		{"tenant alone", map[string]string{"AZURE_TENANT_ID": "72f988bf-86f1-41af-91ab-2d7cd011db47"}, "AZURE_CLIENT_ID is not set"},
		{"no secret", map[string]string{"AZURE_TENANT_ID": "72f988bf-86f1-41af-91ab-2d7cd011db47", "AZURE_CLIENT_ID": "6e74172b-be56-4843-9ff4-e66a39bb12e3"}, "AZURE_CLIENT_SECRET is not set"},
		{"misspelled", map[string]string{"AZURE_CLIENTSECRET": "x"}, "did you mean AZURE_CLIENT_SECRET?"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, v := range []string{"AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_AUTHORITY_HOST", "API_SCOPE", "API_URL"} {
				t.Setenv(v, "")
			}
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			if err := run(t.Context(), &strings.Builder{}); err == nil || !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("%v, want an error mentioning %q", err, tc.mention)
			}
		})
	}
}
