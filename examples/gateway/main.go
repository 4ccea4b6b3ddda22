// Command gateway is entragate's forward-auth service: the authentication
// endpoint of nginx (auth_request), Traefik (ForwardAuth), Caddy
// (forward_auth) or Envoy (ext_authz, HTTP), which protects services in
// any language behind the gateway with Entra ID access tokens. The gateway
// sends it each request's Authorization header, method and path; it
// answers 200 with the caller's identity in X-Entra-* headers, which the
// gateway passes upstream, or the 401, 403 or 503 entragate's middleware
// would send.
//
//	cd examples/gateway && go run .
//
// Configuration: the sample API's variables (AZURE_TENANT_ID,
// AZURE_CLIENT_ID, AZURE_AUTHORITY_HOST, and ALLOWED_TENANT_IDS... for a
// multi-tenant API), and
//
//	GATEWAY            nginx (default), traefik, caddy or envoy
//	RULES_FILE         the routes (default rules.conf in the working directory): METHODS PATH REQUIREMENT
//	TRUSTED_NETWORKS   comma-separated CIDRs the gateway connects from (default 127.0.0.1/32,::1/128)
//	GATEWAY_SECRET     optional: a secret the gateway sends in X-Entragate-Gateway-Secret
//	HEADER_PREFIX      optional: the identity headers' prefix (default X-Entra-)
//	ENVOY_PATH_PREFIX  Envoy only, and required there: ext_authz's path_prefix
//	ADDR               listen address (default 127.0.0.1:9000)
//
// With no tenant configured it runs offline against a fake tenant with
// keys generated at start-up, and prints tokens for the rules file.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/entragate/entragate/examples/internal/demo"
	"github.com/entragate/entragate/examples/internal/env"
	entragate "github.com/entragate/entragate/middleware"
	"github.com/entragate/entragate/middleware/entratest"
	"github.com/entragate/entragate/middleware/forwardauth"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "gateway:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, stdout, stderr io.Writer) error {
	s, err := start(ctx, stderr)
	if err != nil {
		return err
	}
	defer s.Close()
	if s.setup.Tenant != nil {
		printOfflineHelp(stdout, s.setup.Tenant, s.URL)
	}
	s.setup.Logger.Info("forward-auth service listening", "url", s.URL, "gateway", s.gateway.String())
	<-ctx.Done()
	return nil
}

// service is the running forward-auth service.
type service struct {
	URL     string
	setup   *demo.Setup
	auth    *entragate.Authenticator
	gateway forwardauth.Gateway
	server  *http.Server
}

func (s *service) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.server.Shutdown(ctx)
	s.auth.Close()
	s.setup.Close()
}

// gatewayVariables are the variables of this service beyond the API's.
var gatewayVariables = []string{"GATEWAY", "RULES_FILE", "TRUSTED_NETWORKS", "GATEWAY_SECRET", "HEADER_PREFIX", "ENVOY_PATH_PREFIX"}

// start configures the service from the environment and serves it; edit,
// for tests, changes the Authenticator's configuration.
func start(ctx context.Context, stderr io.Writer, edit ...func(*entragate.Config)) (*service, error) {
	addrSet := os.Getenv("ADDR") != ""
	// The gateway's own settings first: a typo there must not cost a
	// start of the offline tenant.
	cfg, err := gatewayConfig(env.New(append(demo.Variables(), gatewayVariables...)...))
	if err != nil {
		return nil, err
	}
	setup, err := demo.FromEnv(stderr)
	if err != nil {
		return nil, err
	}
	for _, e := range edit {
		e(&setup.Config)
	}
	if !addrSet {
		setup.Addr = "127.0.0.1:9000"
	}
	auth, err := entragate.New(ctx, setup.Config)
	if err != nil {
		setup.Close()
		return nil, err
	}
	cfg.Authenticator, cfg.Logger = auth, setup.Logger
	h, err := forwardauth.New(cfg)
	if err == nil {
		var ln net.Listener
		if ln, err = net.Listen("tcp", setup.Addr); err == nil {
			s := &service{URL: demo.BaseURL(ln.Addr()), setup: setup, auth: auth, gateway: cfg.Gateway,
				server: &http.Server{Handler: withHealth(auth, h), ReadHeaderTimeout: 5 * time.Second, MaxHeaderBytes: 64 << 10}}
			go func() {
				if err := s.server.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
					setup.Logger.Error("serving", "error", err)
				}
			}()
			return s, nil
		}
	}
	auth.Close()
	setup.Close()
	return nil, err
}

// withHealth serves the service's own probes beside the checks, which are
// every other request (nginx and Traefik call one path; Envoy any path,
// behind its path prefix). No ServeMux: it would clean the paths the
// check must judge as sent, and redirect some.
func withHealth(auth *entragate.Authenticator, check http.Handler) http.Handler {
	readyz := demo.Readyz(auth)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodGet && r.URL.RawPath == "" && r.URL.Path == "/_entragate/healthz":
			demo.Healthz(w, r)
		case r.Method == http.MethodGet && r.URL.RawPath == "" && r.URL.Path == "/_entragate/readyz":
			readyz(w, r)
		default:
			check.ServeHTTP(w, r)
		}
	})
}

// gatewayConfig reads the gateway's variables and the rules file.
func gatewayConfig(v *env.Vars) (forwardauth.Config, error) {
	var cfg forwardauth.Config
	switch g := strings.ToLower(v.String("GATEWAY")); g {
	case "", "nginx":
		cfg.Gateway = forwardauth.Nginx
	case "traefik":
		cfg.Gateway = forwardauth.Traefik
	case "caddy":
		cfg.Gateway = forwardauth.Caddy
	case "envoy":
		cfg.Gateway = forwardauth.Envoy
	default:
		return cfg, fmt.Errorf("GATEWAY=%q: write nginx, traefik, caddy or envoy", g)
	}
	cfg.EnvoyPathPrefix = v.String("ENVOY_PATH_PREFIX")
	if prefix := strings.TrimRight(cfg.EnvoyPathPrefix, "/"); cfg.Gateway == forwardauth.Envoy &&
		(prefix == "" || prefix == "/_entragate" || strings.HasPrefix(prefix, "/_entragate/")) {
		// Envoy sends the original path as the check's own: without a
		// prefix of its own, a request for /_entragate/healthz (or, under
		// /_entragate, for /healthz) would be answered by the probe
		// instead of judged.
		return cfg, errors.New("GATEWAY=envoy needs ENVOY_PATH_PREFIX (the ext_authz path_prefix, e.g. /ext-authz, not / and not under /_entragate), which keeps the checks apart from this service's probes")
	}
	cfg.SharedSecret = v.String("GATEWAY_SECRET")
	cfg.HeaderPrefix = v.String("HEADER_PREFIX")
	networks := v.String("TRUSTED_NETWORKS")
	if networks == "" {
		networks = "127.0.0.1/32,::1/128"
	}
	for _, n := range strings.Split(networks, ",") {
		p, err := netip.ParsePrefix(strings.TrimSpace(n))
		if err != nil {
			return cfg, fmt.Errorf("TRUSTED_NETWORKS: %q is not a CIDR prefix such as 10.0.0.0/8", n)
		}
		cfg.TrustedNetworks = append(cfg.TrustedNetworks, p)
	}
	if err := v.Err(); err != nil {
		return cfg, err
	}
	path := v.String("RULES_FILE")
	if path == "" {
		path = "rules.conf"
	}
	f, err := os.Open(path)
	if err != nil {
		return cfg, fmt.Errorf("RULES_FILE: %w", err)
	}
	defer f.Close()
	if cfg.Routes, err = parseRules(f); err != nil {
		return cfg, fmt.Errorf("RULES_FILE %s: %w", path, err)
	}
	return cfg, nil
}

// printOfflineHelp prints tokens for the sample rules file, to send
// through the gateway.
func printOfflineHelp(w io.Writer, t *entratest.Tenant, url string) {
	lines := []string{
		"entragate forward-auth service, OFFLINE MODE: it trusts a local fake Entra tenant and listens on " + url + ".",
		"Put a gateway in front of your service with the README's configuration (nginx: Gateways), then:",
		"",
		"# reads orders (scope Orders.Read)",
		"export READER=" + t.AccessToken(entratest.Scopes("Orders.Read")),
		"# writes orders (scope Orders.Write)",
		"export WRITER=" + t.AccessToken(entratest.Scopes("Orders.Write")),
		"# a daemon with the Admin app role",
		"export ADMIN=" + t.AppToken(entratest.Roles("Admin")),
		"# pays, after a step-up (scope Payments.Write, authentication context c1)",
		"export PAYER=" + t.AccessToken(entratest.Scopes("Payments.Write"), entratest.AuthContexts("c1")),
		`curl -i -H "Authorization: Bearer $READER" http://localhost:8000/api/orders/42`,
		"",
	}
	fmt.Fprintln(w, strings.Join(lines, "\n"))
}
