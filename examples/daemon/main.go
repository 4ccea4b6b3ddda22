// Command daemon is a background service calling the protected
// /secure-data API on its own behalf: MSAL for Go gets an app-only token
// with the client-credentials flow (scope api://<api-client-id>/.default),
// carrying the SecureData.Read.All app role an administrator granted it.
//
//	cd examples/daemon && go run .
//
// With no configuration it runs offline against a fake tenant and the
// sample API, both started on loopback. Against real Entra set
// AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET, API_SCOPE
// (api://<api-client-id>/.default) and API_URL (default
// http://localhost:8080); optionally AZURE_AUTHORITY_HOST.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"

	"github.com/entragate/entragate/examples/internal/env"
	"github.com/entragate/entragate/examples/internal/offline"
	entragate "github.com/entragate/entragate/middleware"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := run(ctx, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "daemon:", err)
		os.Exit(1)
	}
}

// config is the daemon's registration and the API it calls.
type config struct {
	authorityHost, tenantID, clientID, secret, scope, apiURL string
	client                                                   *http.Client
	instanceDiscovery                                        bool
}

func run(ctx context.Context, out io.Writer) error {
	cfg, off, err := configure(ctx)
	if err != nil {
		return err
	}
	if off != nil {
		defer off.Close()
		fmt.Fprintf(out, "entragate daemon, OFFLINE MODE: a fake Entra tenant (%s) and the sample API (%s) on loopback.\n",
			off.Tenant.Server().URL, off.APIURL)
	}
	cred, err := confidential.NewCredFromSecret(cfg.secret)
	if err != nil {
		return err
	}
	app, err := confidential.New(cfg.authorityHost+"/"+cfg.tenantID, cfg.clientID, cred,
		confidential.WithHTTPClient(cfg.client), confidential.WithInstanceDiscovery(cfg.instanceDiscovery))
	if err != nil {
		return err
	}
	// MSAL caches the app-only token and renews it before it expires.
	res, err := app.AcquireTokenByCredential(ctx, []string{cfg.scope})
	if err != nil {
		return fmt.Errorf("getting a token for %s: %w", cfg.scope, err)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, cfg.apiURL+"/secure-data", nil)
	req.Header.Set("Authorization", "Bearer "+res.AccessToken)
	resp, err := cfg.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	fmt.Fprintf(out, "GET %s/secure-data: %s\n%s", cfg.apiURL, resp.Status, body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("the API answered %s: %s", resp.Status, resp.Header.Get("WWW-Authenticate"))
	}
	return nil
}

// configure reads the environment; with no Azure application configured
// it starts the offline stack. Every mistake names its variable.
func configure(ctx context.Context) (config, *offline.Stack, error) {
	v := env.New("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_AUTHORITY_HOST", "API_SCOPE", "API_URL")
	cfg := config{client: &http.Client{Timeout: 30 * time.Second}, instanceDiscovery: true}
	if !v.Any("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET") {
		if v.Any("AZURE_AUTHORITY_HOST", "API_SCOPE", "API_URL") {
			return cfg, nil, errors.New("AZURE_AUTHORITY_HOST, API_SCOPE and API_URL configure a real tenant: set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET too")
		}
		if err := v.Err(); err != nil {
			return cfg, nil, err
		}
		off, err := offline.Start(ctx)
		if err != nil {
			return cfg, nil, err
		}
		srv := off.Tenant.Server()
		cfg.authorityHost, cfg.tenantID = srv.URL, off.Tenant.ID
		cfg.clientID, cfg.secret = off.Daemon.ClientID, off.Daemon.Secret
		cfg.scope, cfg.apiURL, cfg.client = off.AppScope, off.APIURL, srv.Client()
		cfg.instanceDiscovery = false // Microsoft does not know the fake tenant
		return cfg, off, nil
	}
	cfg.tenantID = v.Required("AZURE_TENANT_ID", "the directory (tenant) ID, or a domain, of the daemon's registration")
	cfg.clientID = v.GUID("AZURE_CLIENT_ID", "the application (client) ID of the daemon's registration")
	v.Required("AZURE_CLIENT_ID", "the application (client) ID of the daemon's registration")
	cfg.secret = v.Required("AZURE_CLIENT_SECRET", "a client secret of the daemon's registration")
	cfg.scope = v.Required("API_SCOPE", "the API's .default scope, api://<api-client-id>/.default")
	cfg.authorityHost, cfg.apiURL = v.Host("AZURE_AUTHORITY_HOST"), v.String("API_URL")
	if err := v.Err(); err != nil {
		return cfg, nil, err
	}
	if cfg.authorityHost == "" {
		cfg.authorityHost = entragate.DefaultAuthorityHost
	}
	if cfg.apiURL == "" {
		cfg.apiURL = "http://localhost:8080"
	}
	return cfg, nil, nil
}
