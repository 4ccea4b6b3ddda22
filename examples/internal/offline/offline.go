// Package offline runs, on loopback, what the web app and daemon examples
// need when no Azure tenant is configured: a fake Entra tenant that signs
// users in (entratest, with TLS, since MSAL accepts only https authorities,
// and signing keys generated at start-up), with the registrations a real
// tenant would hold, and the sample /secure-data API trusting it.
package offline

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/entragate/entragate/examples/secure-data/api"
	"github.com/entragate/entragate/middleware"
	"github.com/entragate/entragate/middleware/entratest"
)

// Stack is a running fake tenant and sample API.
type Stack struct {
	// Tenant is the fake tenant; Tenant.Server().URL its https authority
	// host, Tenant.Server().Client() a client that trusts it.
	Tenant *entratest.Tenant
	// WebApp is the web app's registration (client ID, secret, redirect
	// URI); Daemon the daemon's, granted the SecureData.Read.All app role.
	WebApp, Daemon *entratest.App
	// DaemonCertificate is the daemon's certificate credential (its key,
	// for AZURE_CLIENT_CERTIFICATE_PATH); Workload an external issuer (a
	// Kubernetes cluster's) whose tokens for DaemonSubject are the
	// daemon's federated credential (AZURE_FEDERATED_TOKEN_FILE).
	DaemonCertificate *entratest.Key
	Workload          *entratest.WorkloadIssuer
	DaemonSubject     string
	// APIURL is the sample API's base URL; ReadScope its SecureData.Read
	// scope and BasicScope its access_as_user scope, as clients request
	// them; AppScope the .default scope of client credentials.
	APIURL, ReadScope, BasicScope, AppScope string
	// Provider loads the fake tenant's metadata and keys for the API; a
	// web app in the same process verifies its ID tokens on it too, so
	// that the process loads each document once.
	Provider *middleware.Provider

	api *http.Server
}

// Start starts the fake tenant and the API, and registers a web app whose
// redirect URIs are redirectURIs (none: only the daemon): where sign-in
// answers and sign-out returns.
func Start(ctx context.Context, redirectURIs ...string) (*Stack, error) {
	srv, err := entratest.Start("127.0.0.1:0", entratest.TLS(), entratest.FreshKeys())
	if err != nil {
		return nil, fmt.Errorf("starting the fake tenant: %w", err)
	}
	tenant := srv.NewTenant(entratest.WithDomain("contoso.example"), entratest.WithUser(entratest.User{
		Name: "Ada Lovelace", GivenName: "Ada", FamilyName: "Lovelace", Username: "ada@contoso.example", ObjectID: entratest.NewGUID(),
	}))
	tenant.AddUser(entratest.User{Name: "Grace Hopper", GivenName: "Grace", FamilyName: "Hopper", Username: "grace@contoso.example"})
	tenant.AddUser(entratest.User{Name: "Alan Turing", GivenName: "Alan", FamilyName: "Turing", Username: "alan@contoso.example"})
	tenant.ExposeScopes("SecureData.Read", "access_as_user")
	s := &Stack{
		Tenant:            tenant,
		ReadScope:         "api://" + tenant.ClientID + "/SecureData.Read",
		BasicScope:        "api://" + tenant.ClientID + "/access_as_user",
		AppScope:          "api://" + tenant.ClientID + "/.default",
		DaemonCertificate: srv.NewKey(),
		Workload:          srv.NewWorkloadIssuer("aks-contoso"),
		DaemonSubject:     "system:serviceaccount:reports:daemon",
	}
	s.Daemon = tenant.RegisterApp(entratest.App{Name: "Contoso reporting daemon", Secret: secret(), Roles: []string{"SecureData.Read.All"},
		Certificates: []*x509.Certificate{s.DaemonCertificate.X509()},
		Federated:    []entratest.FederatedCredential{{Issuer: s.Workload.URL, Subject: s.DaemonSubject}}})
	if len(redirectURIs) > 0 {
		s.WebApp = tenant.RegisterApp(entratest.App{Name: "Contoso web app", Secret: secret(), RedirectURIs: redirectURIs})
	}
	if err := s.startAPI(ctx); err != nil {
		srv.Close()
		return nil, err
	}
	return s, nil
}

// RegisterMiddleTier registers a middle-tier API that the web app calls
// (api://{its client ID}/access_as_user) and that calls the sample API and
// Microsoft Graph as the user: the web app is a known client of it, so
// consenting to the web app's request consents to the middle tier's
// permissions too (Entra's combined consent). The web app must be
// registered (Start with redirect URIs).
func (s *Stack) RegisterMiddleTier() *entratest.App {
	return s.Tenant.RegisterApp(entratest.App{
		Name: "Contoso orders middle tier", Secret: secret(), Scopes: []string{"access_as_user"},
		Permissions:  []string{s.ReadScope, "User.Read"},
		KnownClients: []string{s.WebApp.ClientID},
	})
}

// startAPI serves the sample API on loopback, trusting the fake tenant.
func (s *Stack) startAPI(ctx context.Context) error {
	p, err := middleware.NewProvider(ctx, middleware.ProviderConfig{
		Authorities: []middleware.Authority{s.Tenant.Authority()},
		HTTPClient:  s.Tenant.Server().Client(), // trusts the fake tenant's certificate
	})
	if err != nil {
		return err
	}
	auth, err := p.NewAuthenticator(middleware.APIConfig{ClientID: s.Tenant.ClientID})
	if err != nil {
		p.Close()
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		p.Close()
		return err
	}
	s.Provider = p
	s.api = &http.Server{Handler: api.Routes(auth), ReadHeaderTimeout: 5 * time.Second}
	s.APIURL = "http://" + ln.Addr().String()
	go func() {
		if err := s.api.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Println("offline API:", err)
		}
	}()
	return nil
}

// Close stops the API and the fake tenant.
func (s *Stack) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.api.Shutdown(ctx)
	s.Provider.Close()
	s.Tenant.Server().Close()
}

// secret makes a client secret that exists only in this process.
func secret() string {
	b := make([]byte, 30)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
