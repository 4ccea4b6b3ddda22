// Command daemon is a background service calling the protected
// /secure-data API on its own behalf: MSAL for Go gets an app-only token
// with the client-credentials flow (scope api://<api-client-id>/.default),
// carrying the SecureData.Read.All app role an administrator granted it.
//
//	cd examples/daemon && go run .
//
// It authenticates with a client secret, a certificate, or a federated
// credential (a token another issuer gives the workload, such as AKS
// workload identity), chosen by the Azure SDK's variables: exactly one of
// AZURE_CLIENT_SECRET, AZURE_CLIENT_CERTIFICATE_PATH (a PEM file holding
// the certificate and its private key; AZURE_CLIENT_CERTIFICATE_PASSWORD
// for an encrypted key) and AZURE_FEDERATED_TOKEN_FILE (read again for
// every token request: the platform rotates it).
//
// With no configuration it runs offline against a fake tenant and the
// sample API, both started on loopback; OFFLINE_CREDENTIAL=certificate or
// federated makes it use that credential there, from files it writes.
// Against real Entra set AZURE_TENANT_ID, AZURE_CLIENT_ID, the credential,
// API_SCOPE (api://<api-client-id>/.default) and API_URL (default
// http://localhost:8080); optionally AZURE_AUTHORITY_HOST.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
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
	authorityHost, tenantID, clientID, scope, apiURL string
	// One credential: a secret, a certificate file (and the key's
	// password), or a federated token file.
	secret, certFile, certPassword, tokenFile string
	client                                    *http.Client
	instanceDiscovery                         bool
	// offlineDir holds the offline credential files; run removes it.
	offlineDir string
}

// credentialVariables are the Azure SDK's names for the credentials.
var credentialVariables = []string{"AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_FEDERATED_TOKEN_FILE"}

func run(ctx context.Context, out io.Writer) error {
	cfg, off, err := configure(ctx)
	if err != nil {
		return err
	}
	if off != nil {
		defer off.Close()
		defer os.RemoveAll(cfg.offlineDir)
		fmt.Fprintf(out, "entragate daemon, OFFLINE MODE: a fake Entra tenant (%s) and the sample API (%s) on loopback, credential: %s.\n",
			off.Tenant.Server().URL, off.APIURL, cfg.kind())
	}
	return call(ctx, out, cfg)
}

// kind names the configured credential.
func (c config) kind() string {
	switch {
	case c.certFile != "":
		return "certificate " + c.certFile
	case c.tokenFile != "":
		return "federated token " + c.tokenFile
	}
	return "client secret"
}

// credential is MSAL's credential for the configuration.
func (c config) credential() (confidential.Credential, error) {
	switch {
	case c.certFile != "":
		pemData, err := os.ReadFile(c.certFile)
		if err != nil {
			return confidential.Credential{}, fmt.Errorf("AZURE_CLIENT_CERTIFICATE_PATH: %w", err)
		}
		certs, key, err := confidential.CertFromPEM(pemData, c.certPassword)
		if err != nil {
			return confidential.Credential{}, fmt.Errorf("AZURE_CLIENT_CERTIFICATE_PATH %s: %w (a PEM file with the certificate and its private key; convert a .pfx with openssl pkcs12 -nodes)", c.certFile, err)
		}
		return confidential.NewCredFromCert(certs, key)
	case c.tokenFile != "":
		file := c.tokenFile
		return confidential.NewCredFromAssertionCallback(func(context.Context, confidential.AssertionRequestOptions) (string, error) {
			// Read for every request: the platform replaces the file
			// before the token in it expires.
			b, err := os.ReadFile(file)
			if err != nil {
				return "", fmt.Errorf("AZURE_FEDERATED_TOKEN_FILE: %w", err)
			}
			return strings.TrimSpace(string(b)), nil
		}), nil
	}
	return confidential.NewCredFromSecret(c.secret)
}

// call gets the app-only token and calls the API with it.
func call(ctx context.Context, out io.Writer, cfg config) error {
	cred, err := cfg.credential()
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
	v := env.New(append([]string{"AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_AUTHORITY_HOST", "API_SCOPE", "API_URL",
		"AZURE_CLIENT_CERTIFICATE_PASSWORD", "OFFLINE_CREDENTIAL"}, credentialVariables...)...)
	cfg := config{client: &http.Client{Timeout: 30 * time.Second}}
	if !v.Any(append([]string{"AZURE_TENANT_ID", "AZURE_CLIENT_ID"}, credentialVariables...)...) {
		if v.Any("AZURE_AUTHORITY_HOST", "API_SCOPE", "API_URL") {
			return cfg, nil, errors.New("AZURE_AUTHORITY_HOST, API_SCOPE and API_URL configure a real tenant: set AZURE_TENANT_ID, AZURE_CLIENT_ID and a credential too")
		}
		if err := v.Err(); err != nil {
			return cfg, nil, err
		}
		return offlineConfig(ctx, cfg, v.String("OFFLINE_CREDENTIAL"))
	}
	cfg.tenantID = v.Required("AZURE_TENANT_ID", "the directory (tenant) ID, or a domain, of the daemon's registration")
	cfg.clientID = v.GUID("AZURE_CLIENT_ID", "the application (client) ID of the daemon's registration")
	v.Required("AZURE_CLIENT_ID", "the application (client) ID of the daemon's registration")
	cfg.secret, cfg.certFile, cfg.tokenFile = v.String("AZURE_CLIENT_SECRET"), v.String("AZURE_CLIENT_CERTIFICATE_PATH"), v.String("AZURE_FEDERATED_TOKEN_FILE")
	cfg.certPassword = v.String("AZURE_CLIENT_CERTIFICATE_PASSWORD")
	cfg.scope = v.Required("API_SCOPE", "the API's .default scope, api://<api-client-id>/.default")
	cfg.authorityHost, cfg.apiURL = v.Host("AZURE_AUTHORITY_HOST"), v.String("API_URL")
	if err := v.Err(); err != nil {
		return cfg, nil, err
	}
	if err := cfg.checkCredential(); err != nil {
		return cfg, nil, err
	}
	if cfg.authorityHost == "" {
		cfg.authorityHost = entragate.DefaultAuthorityHost
	}
	if cfg.apiURL == "" {
		cfg.apiURL = "http://localhost:8080"
	}
	cfg.instanceDiscovery = env.InstanceDiscovery(cfg.authorityHost)
	return cfg, nil, nil
}

// checkCredential requires exactly one credential.
func (c config) checkCredential() error {
	n := 0
	for _, v := range []string{c.secret, c.certFile, c.tokenFile} {
		if v != "" {
			n++
		}
	}
	switch {
	case n == 0:
		return errors.New("no credential: set AZURE_CLIENT_SECRET, AZURE_CLIENT_CERTIFICATE_PATH or AZURE_FEDERATED_TOKEN_FILE")
	case n > 1:
		return errors.New("set one of AZURE_CLIENT_SECRET, AZURE_CLIENT_CERTIFICATE_PATH and AZURE_FEDERATED_TOKEN_FILE, not several")
	case c.certPassword != "" && c.certFile == "":
		return errors.New("AZURE_CLIENT_CERTIFICATE_PASSWORD is set without AZURE_CLIENT_CERTIFICATE_PATH")
	}
	return nil
}

// offlineConfig starts the offline stack and authenticates to it with the
// secret, or with the certificate or the federated token, written to
// files as a platform would.
func offlineConfig(ctx context.Context, cfg config, credential string) (config, *offline.Stack, error) {
	off, err := offline.Start(ctx)
	if err != nil {
		return cfg, nil, err
	}
	srv := off.Tenant.Server()
	cfg.authorityHost, cfg.tenantID, cfg.clientID = srv.URL, off.Tenant.ID, off.Daemon.ClientID
	cfg.scope, cfg.apiURL, cfg.client = off.AppScope, off.APIURL, srv.Client()
	cfg.instanceDiscovery = false // Microsoft does not know the fake tenant
	dir, err := os.MkdirTemp("", "entragate-daemon")
	if err != nil {
		off.Close()
		return cfg, nil, err
	}
	cfg.offlineDir = dir
	switch credential {
	case "", "secret":
		cfg.secret = off.Daemon.Secret
	case "certificate":
		cfg.certFile = filepath.Join(dir, "daemon.pem")
		err = os.WriteFile(cfg.certFile, off.DaemonCertificate.CertificatePEM(), 0o600)
	case "federated":
		cfg.tokenFile = filepath.Join(dir, "azure-identity-token")
		err = os.WriteFile(cfg.tokenFile, []byte(off.Workload.Token(off.DaemonSubject, time.Hour)), 0o600)
	default:
		err = fmt.Errorf("OFFLINE_CREDENTIAL=%q: write secret, certificate or federated", credential)
	}
	if err != nil {
		off.Close()
		os.RemoveAll(dir)
		return cfg, nil, err
	}
	return cfg, off, nil
}
