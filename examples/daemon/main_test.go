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

func TestHalfConfigurationIsAnError(t *testing.T) {
	t.Setenv("AZURE_TENANT_ID", "72f988bf-86f1-41af-91ab-2d7cd011db47")
	t.Setenv("AZURE_CLIENT_ID", "")
	if err := run(t.Context(), &strings.Builder{}); err == nil || !strings.Contains(err.Error(), "AZURE_CLIENT_SECRET") {
		t.Errorf("half a configuration: %v", err)
	}
}
