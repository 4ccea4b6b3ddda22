// Command groups is the sample API with a route only the members of one
// group may call, whatever the number of groups its users are in: Entra
// lists at most 200 groups in a token, and for a user in more it says so
// instead (group overage); entragate then reads the user's groups from
// Microsoft Graph with the API's own credentials (MSAL for Go's client
// credentials), once per user for a few minutes.
//
//	cd examples/groups && go run .
//
//	GET /healthz     public liveness probe
//	GET /readyz      public readiness probe
//	GET /reports     scope SecureData.Read and membership of GROUP_ID
//	GET /me/groups   whether the caller is in GROUP_ID, by the token or by Graph
//
// Against a real tenant set AZURE_TENANT_ID, AZURE_CLIENT_ID (the API's
// registration, whose token configuration emits groups), AZURE_CLIENT_SECRET
// (a secret of that registration: Graph is called as the API, which needs
// the application permission User.Read.All, admin-consented, and
// Application.Read.All for daemons in overage) and
// GROUP_ID (the group's object ID); optionally AZURE_AUTHORITY_HOST,
// GRAPH_ENDPOINT (the cloud's Graph, default https://graph.microsoft.com)
// and ADDR (default :8080). With none of them it runs offline, on
// loopback, with a fake tenant whose users are in hundreds of groups, and
// prints curl commands.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"

	"github.com/entragate/entragate/examples/internal/demo"
	"github.com/entragate/entragate/examples/internal/env"
	entragate "github.com/entragate/entragate/middleware"
	"github.com/entragate/entragate/middleware/entratest"
	"github.com/entragate/entragate/middleware/msgraph"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "groups:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, stdout, stderr io.Writer) error {
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	s, err := start(ctx, logger, "")
	if err != nil {
		return err
	}
	defer s.Close()
	if s.offline != nil {
		s.offline.printHelp(stdout, s.URL)
	} else {
		logger.Info("groups sample listening", "url", s.URL)
	}
	<-ctx.Done()
	return nil
}

// variables are what the sample reads.
var variables = []string{"AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_AUTHORITY_HOST", "GROUP_ID", "GRAPH_ENDPOINT", "ADDR"}

// setup is the sample's configuration.
type setup struct {
	host, tenantID, clientID, secret, groupID string
	// graph is Graph's endpoint, graphResource the resource its tokens
	// are for (the same URL but offline, where the fake serves Graph).
	graph, graphResource string
	httpClient           *http.Client // Entra and Graph
	instanceDiscovery    bool
	addr                 string
}

// stack is the running sample.
type stack struct {
	URL     string
	auth    *entragate.Authenticator
	groups  *entragate.Groups
	server  *http.Server
	offline *offlineTenant
}

func (s *stack) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.server.Shutdown(ctx)
	s.auth.Close()
	if s.offline != nil {
		s.offline.srv.Close()
	}
}

// start configures the sample from the environment (offline without it),
// listens on addr (ADDR when empty) and serves.
func start(ctx context.Context, logger *slog.Logger, addr string) (*stack, error) {
	v := env.New(variables...)
	if addr == "" {
		addr = v.String("ADDR")
	}
	var cfg setup
	var off *offlineTenant
	var err error
	if v.Any("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "GROUP_ID") {
		cfg, err = fromEnv(v, addr)
	} else {
		if err = v.Err(); err == nil {
			cfg, off, err = startOffline(addr)
		}
	}
	if err != nil {
		return nil, err
	}
	s, err := serve(ctx, logger, cfg)
	if err != nil {
		if off != nil {
			off.srv.Close()
		}
		return nil, err
	}
	s.offline = off
	return s, nil
}

// fromEnv reads a real tenant's configuration.
func fromEnv(v *env.Vars, addr string) (setup, error) {
	cfg := setup{addr: addr, httpClient: &http.Client{Timeout: 30 * time.Second}, instanceDiscovery: true}
	cfg.tenantID = v.GUID("AZURE_TENANT_ID", "the directory (tenant) ID of the API's registration")
	v.Required("AZURE_TENANT_ID", "the directory (tenant) ID of the API's registration")
	cfg.clientID = v.GUID("AZURE_CLIENT_ID", "the application (client) ID of the API's registration")
	v.Required("AZURE_CLIENT_ID", "the application (client) ID of the API's registration")
	cfg.secret = v.Required("AZURE_CLIENT_SECRET", "a client secret of the API's registration, which reads groups from Graph")
	cfg.groupID = v.GUID("GROUP_ID", "the object ID of the group whose members may read /reports")
	v.Required("GROUP_ID", "the object ID of the group whose members may read /reports")
	cfg.host, cfg.graph = v.Host("AZURE_AUTHORITY_HOST"), v.Host("GRAPH_ENDPOINT")
	if err := v.Err(); err != nil {
		return cfg, err
	}
	if cfg.host == "" {
		cfg.host = entragate.DefaultAuthorityHost
	}
	if cfg.graph == "" {
		cfg.graph = msgraph.Global
	}
	cfg.graphResource = cfg.graph
	if cfg.addr == "" {
		cfg.addr = ":8080"
	}
	return cfg, nil
}

// serve builds the Authenticator, the group resolver over Graph and the
// routes, and serves them.
func serve(ctx context.Context, logger *slog.Logger, cfg setup) (*stack, error) {
	auth, err := entragate.New(ctx, entragate.Config{
		ClientID: cfg.clientID, Authorities: []entragate.Authority{entragate.EntraTenant(cfg.tenantID).WithHost(cfg.host)},
		HTTPClient: cfg.httpClient, Logger: logger,
	})
	if err != nil {
		return nil, err
	}
	tokens, err := graphTokens(cfg)
	if err != nil {
		auth.Close()
		return nil, err
	}
	resolver, err := msgraph.New(msgraph.Config{Token: tokens, Endpoint: cfg.graph, HTTPClient: cfg.httpClient})
	if err != nil {
		auth.Close()
		return nil, err
	}
	groups, err := entragate.NewGroups(entragate.GroupsConfig{Resolver: resolver, Logger: logger})
	if err != nil {
		auth.Close()
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		auth.Close()
		return nil, err
	}
	s := &stack{URL: demo.BaseURL(ln.Addr()), auth: auth, groups: groups,
		server: &http.Server{Handler: routes(auth, groups, cfg.groupID), ReadHeaderTimeout: 5 * time.Second}}
	go func() {
		if err := s.server.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("serving", "error", err)
		}
	}()
	return s, nil
}

// graphTokens is msgraph's Token function: app-only Microsoft Graph tokens
// from MSAL's client credentials, as the API itself. WithTenantID gets the
// token in the user's tenant, so one MSAL client serves a multi-tenant API
// too; MSAL keeps each token in its cache until shortly before it expires.
func graphTokens(cfg setup) (func(context.Context, string) (string, error), error) {
	cred, err := confidential.NewCredFromSecret(cfg.secret)
	if err != nil {
		return nil, err
	}
	client, err := confidential.New(cfg.host+"/"+cfg.tenantID, cfg.clientID, cred,
		confidential.WithHTTPClient(cfg.httpClient), confidential.WithInstanceDiscovery(cfg.instanceDiscovery))
	if err != nil {
		return nil, fmt.Errorf("MSAL: %w", err)
	}
	scopes := []string{cfg.graphResource + "/.default"}
	return func(ctx context.Context, tenantID string) (string, error) {
		res, err := client.AcquireTokenByCredential(ctx, scopes, confidential.WithTenantID(tenantID))
		if err != nil {
			return "", err
		}
		return res.AccessToken, nil
	}, nil
}

// offlineTenant is the fake tenant of offline mode.
type offlineTenant struct {
	srv              *entratest.Server
	tenant           *entratest.Tenant
	ada, grace, alan entratest.User
	groupID          string
}

// startOffline starts a fake tenant on loopback (TLS: MSAL accepts only
// https authorities) whose users are in many groups, with the API's
// registration allowed to read them from its Graph.
func startOffline(addr string) (setup, *offlineTenant, error) {
	addr, err := env.OfflineAddr(addr, "127.0.0.1:8080")
	if err != nil {
		return setup{}, nil, err
	}
	srv, err := entratest.Start("127.0.0.1:0", entratest.TLS(), entratest.FreshKeys())
	if err != nil {
		return setup{}, nil, fmt.Errorf("starting the offline fake tenant: %w", err)
	}
	o := &offlineTenant{srv: srv, tenant: srv.NewTenant(entratest.WithDomain("contoso.example")), groupID: entratest.NewGUID()}
	many := func(member bool) []string {
		ids := make([]string, 450)
		for i := range ids {
			ids[i] = entratest.NewGUID()
		}
		if member {
			ids[317] = o.groupID
		}
		return ids
	}
	o.ada = o.tenant.AddUser(entratest.User{Name: "Ada Lovelace", Groups: many(true)})
	o.grace = o.tenant.AddUser(entratest.User{Name: "Grace Hopper", Groups: many(false)})
	o.alan = o.tenant.AddUser(entratest.User{Name: "Alan Turing", Groups: []string{entratest.NewGUID(), o.groupID}})
	secret := entratest.NewGUID()
	o.tenant.RegisterApp(entratest.App{Name: "Reports API", ClientID: o.tenant.ClientID, Secret: secret, GraphRoles: []string{"User.Read.All"}})
	return setup{
		host: srv.URL, tenantID: o.tenant.ID, clientID: o.tenant.ClientID, secret: secret, groupID: o.groupID,
		graph: srv.URL, graphResource: msgraph.Global, httpClient: srv.Client(), addr: addr,
	}, o, nil
}
