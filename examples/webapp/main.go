// Command webapp is the tutorial's web app in Go: it signs a user in with
// Microsoft Entra ID through MSAL for Go (authorization code with PKCE,
// state and nonce), verifies the ID token with entragate, shows the
// profile with Microsoft Graph's /me, and calls the protected
// /secure-data API with the user's access token. Its confidential page
// answers the API's claims challenge: the user steps up through Entra
// (authentication context c1) and the call is retried once.
//
//	cd examples/webapp && go run .
//
// With no configuration it runs offline: a fake Entra tenant, the sample
// API and this app, all on loopback, and prints the URL to open. Against
// real Entra set AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET,
// REDIRECT_URI (default http://localhost:8000/get_token), API_SCOPES (the
// API's scopes, space-separated, e.g. api://<api-client-id>/SecureData.Read)
// and API_URL (default http://localhost:8080); optionally
// AZURE_AUTHORITY_HOST, GRAPH_URL, SESSION_KEY (32 bytes, base64; default:
// random at each start), ADDR (default 127.0.0.1:8000), MIDDLE_TIER_URL
// and MIDDLE_TIER_SCOPES (examples/middletier, which calls other APIs as
// the user), and REDIS_URL with TOKEN_CACHE_KEY (32 bytes, base64):
// sessions and MSAL's token cache in Redis, shared by every instance
// (with the same SESSION_KEY), surviving restarts.
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/entragate/entragate/examples/internal/env"
	"github.com/entragate/entragate/examples/internal/offline"
	entragate "github.com/entragate/entragate/middleware"
	"github.com/entragate/entragate/middleware/tokencache"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(ctx, logger, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "webapp:", err)
		os.Exit(1)
	}
}

// stack is a running web app, and in offline mode what it talks to.
type stack struct {
	URL     string
	app     *App
	server  *http.Server
	offline *offline.Stack
}

func (s *stack) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.server.Shutdown(ctx)
	s.app.Close()
	if s.offline != nil {
		s.offline.Close()
	}
}

func run(ctx context.Context, logger *slog.Logger, out *os.File) error {
	s, err := start(ctx, logger, os.Getenv("ADDR"))
	if err != nil {
		return err
	}
	defer s.Close()
	if s.offline != nil {
		users := s.offline.Tenant.Users()
		fmt.Fprintf(out, `entragate web app, OFFLINE MODE: a fake Entra tenant, the sample API and this app, on loopback.
  Open %s and sign in as %s, %s or %s (no password).
  The consent page lets you untick SecureData.Read, to see the API refuse you with 403,
  or "Sign you in and read your profile", to see why the app needs it.
  "Confidential data" needs a step-up: the API's claims challenge sends you to verify your identity.
  fake tenant %s, API %s
`, s.URL, users[0].Name, users[1].Name, users[2].Name, s.offline.Tenant.Server().URL, s.offline.APIURL)
	} else {
		fmt.Fprintf(out, "entragate web app: open %s\n", s.URL)
	}
	<-ctx.Done()
	return nil
}

// variables are what the web app reads.
var variables = []string{"AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_AUTHORITY_HOST",
	"REDIRECT_URI", "API_SCOPES", "API_URL", "SESSION_KEY", "ADDR",
	"MIDDLE_TIER_URL", "MIDDLE_TIER_SCOPES", "REDIS_URL", "TOKEN_CACHE_KEY", "AUTHORITY_BROWSER_HOST", "GRAPH_URL"}

// start configures the app from the environment (offline without it),
// listens on addr and serves.
func start(ctx context.Context, logger *slog.Logger, addr string) (*stack, error) {
	v := env.New(variables...)
	offlineMode := !v.Any("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET")
	var err error
	switch {
	case offlineMode:
		// The fake tenant signs anyone in: the app stays on loopback.
		if addr, err = env.OfflineAddr(addr, "127.0.0.1:8000"); err != nil {
			return nil, err
		}
	case addr == "":
		addr = "127.0.0.1:8000"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	// Browsers treat http://localhost as a secure origin, so the app's
	// Secure cookie works without TLS on this machine.
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	base := "http://localhost:" + port
	cfg, off, err := configure(ctx, v, base, offlineMode, logger)
	if err != nil {
		ln.Close()
		return nil, err
	}
	cfg.Logger = logger
	app, err := New(ctx, cfg)
	if err != nil {
		ln.Close()
		if off != nil {
			off.Close()
		}
		return nil, err
	}
	s := &stack{URL: base, app: app, offline: off,
		server: &http.Server{Handler: app.Handler(), ReadHeaderTimeout: 5 * time.Second, ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}}
	go func() {
		if err := s.server.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("serving", "error", err)
		}
	}()
	return s, nil
}

// configure reads the environment; in offline mode it starts the offline
// stack. Every mistake names its variable.
func configure(ctx context.Context, v *env.Vars, base string, offlineMode bool, logger *slog.Logger) (Config, *offline.Stack, error) {
	cfg := Config{
		HomeURL: base + "/", SignedOutURL: base + "/signed-out", GraphURL: "https://graph.microsoft.com",
		HTTPClient: &http.Client{Timeout: 30 * time.Second}, InstanceDiscovery: true, Logger: logger,
	}
	key, err := sessionKey(v)
	if err != nil {
		return cfg, nil, err
	}
	cfg.SessionKey = key
	if offlineMode {
		if v.Any("AZURE_AUTHORITY_HOST", "REDIRECT_URI", "API_SCOPES", "API_URL", "MIDDLE_TIER_URL", "MIDDLE_TIER_SCOPES", "AUTHORITY_BROWSER_HOST", "GRAPH_URL") {
			return cfg, nil, errors.New("AZURE_AUTHORITY_HOST, REDIRECT_URI, API_SCOPES, API_URL, MIDDLE_TIER_URL, MIDDLE_TIER_SCOPES, AUTHORITY_BROWSER_HOST and GRAPH_URL " +
				"configure a real tenant: set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET too (examples/middletier prints them for its offline chain)")
		}
		if err := sharedState(v, &cfg); err != nil {
			return cfg, nil, err
		}
		if err := v.Err(); err != nil {
			return cfg, nil, err
		}
		return offlineConfig(ctx, cfg, base)
	}
	err = tenantConfig(v, &cfg, base)
	return cfg, nil, err
}

// tenantConfig reads the configuration of a real tenant's web app.
func tenantConfig(v *env.Vars, cfg *Config, base string) error {
	cfg.TenantID = v.Required("AZURE_TENANT_ID", "the directory (tenant) ID, or a domain, of the web app's registration")
	cfg.ClientID = v.GUID("AZURE_CLIENT_ID", "the application (client) ID of the web app's registration")
	v.Required("AZURE_CLIENT_ID", "the application (client) ID of the web app's registration")
	cfg.ClientSecret = v.Required("AZURE_CLIENT_SECRET", "a client secret of the web app's registration (Certificates & secrets)")
	cfg.APIScopes = v.Fields("API_SCOPES")
	if len(cfg.APIScopes) == 0 {
		v.Required("API_SCOPES", "the protected API's scopes, space-separated, e.g. api://<api-client-id>/SecureData.Read")
	}
	cfg.AuthorityHost = v.Host("AZURE_AUTHORITY_HOST")
	cfg.RedirectURI, cfg.APIURL = v.String("REDIRECT_URI"), v.String("API_URL")
	cfg.MiddleTierURL, cfg.MiddleTierScopes = v.String("MIDDLE_TIER_URL"), v.Fields("MIDDLE_TIER_SCOPES")
	if graph := v.Host("GRAPH_URL"); graph != "" {
		cfg.GraphURL = graph // another cloud's Graph, or a development tenant's
	}
	if (cfg.MiddleTierURL == "") != (len(cfg.MiddleTierScopes) == 0) {
		return errors.New("MIDDLE_TIER_URL and MIDDLE_TIER_SCOPES go together: the middle tier and its scope, api://<middle-tier-client-id>/access_as_user")
	}
	if err := sharedState(v, cfg); err != nil {
		return err
	}
	if err := v.Err(); err != nil {
		return err
	}
	if cfg.AuthorityHost == "" {
		cfg.AuthorityHost = entragate.DefaultAuthorityHost
	}
	if browser := v.Host("AUTHORITY_BROWSER_HOST"); browser != "" {
		// A development tenant whose browser-facing address differs: the
		// authority's own host (its default included) is replaced.
		host := cfg.AuthorityHost
		cfg.BrowserURL = func(u string) string { return strings.Replace(u, host, browser, 1) }
	}
	cfg.InstanceDiscovery = env.InstanceDiscovery(cfg.AuthorityHost)
	if cfg.RedirectURI == "" {
		cfg.RedirectURI = base + "/get_token"
	}
	if cfg.APIURL == "" {
		cfg.APIURL = "http://localhost:8080"
	}
	return nil
}

// offlineConfig starts the fake tenant and the API, and points the app at
// them.
func offlineConfig(ctx context.Context, cfg Config, base string) (Config, *offline.Stack, error) {
	cfg.RedirectURI = base + "/get_token"
	off, err := offline.Start(ctx, cfg.RedirectURI, cfg.HomeURL, cfg.SignedOutURL)
	if err != nil {
		return cfg, nil, err
	}
	srv := off.Tenant.Server()
	cfg.AuthorityHost, cfg.TenantID = srv.URL, off.Tenant.ID
	cfg.ClientID, cfg.ClientSecret = off.WebApp.ClientID, off.WebApp.Secret
	cfg.APIScopes = []string{off.ReadScope, off.BasicScope}
	cfg.APIURL, cfg.GraphURL = off.APIURL, srv.URL
	cfg.HTTPClient = srv.Client()
	cfg.InstanceDiscovery = false // Microsoft does not know the fake tenant
	// The API in this process already loads the fake tenant's keys: the
	// app's ID tokens are verified on the same Provider.
	cfg.Provider = off.Provider
	// MSAL insists on https authorities, and the fake tenant's certificate
	// is trusted by this process only: the browser opens the fake tenant's
	// pages on the same port over plain http, on loopback.
	cfg.BrowserURL = func(u string) string {
		return strings.Replace(u, srv.URL, srv.PlainURL(), 1)
	}
	return cfg, off, nil
}

// sharedState reads REDIS_URL and TOKEN_CACHE_KEY: with them, sessions
// and MSAL's token cache live in Redis, sealed, shared by every instance
// (which then need the same SESSION_KEY too), and survive restarts.
func sharedState(v *env.Vars, cfg *Config) error {
	url, key := v.String("REDIS_URL"), v.String("TOKEN_CACHE_KEY")
	switch {
	case url == "" && key == "":
		return nil
	case url == "":
		return errors.New("TOKEN_CACHE_KEY is set without REDIS_URL")
	case key == "":
		return errors.New("REDIS_URL needs TOKEN_CACHE_KEY: 32 random bytes, base64 (openssl rand -base64 32), the same for every instance")
	case v.String("SESSION_KEY") == "":
		return errors.New("REDIS_URL shares sessions between instances: set SESSION_KEY too, the same for every instance")
	}
	b, err := base64.StdEncoding.DecodeString(key)
	if err != nil || len(b) != 32 {
		return errors.New("TOKEN_CACHE_KEY must be 32 bytes, base64-encoded (openssl rand -base64 32)")
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		return fmt.Errorf("REDIS_URL: %w", err)
	}
	rdb := redis.NewClient(opts)
	store, err := tokencache.New(tokencache.Config{Redis: rdb, Key: b, Prefix: "entragate:webapp:", Logger: cfg.Logger})
	if err != nil {
		rdb.Close()
		return err
	}
	cfg.Sessions = redisSessions{store}
	cfg.TokenCache = store.MSAL("msal", sessionLifetime)
	cfg.closers = append(cfg.closers, rdb.Close)
	return nil
}

// sessionKey reads SESSION_KEY, or makes a key for this run.
func sessionKey(vars *env.Vars) ([]byte, error) {
	if v := vars.String("SESSION_KEY"); v != "" {
		key, err := base64.StdEncoding.DecodeString(v)
		if err != nil || len(key) != 32 {
			return nil, errors.New("SESSION_KEY must be 32 bytes, base64-encoded (openssl rand -base64 32)")
		}
		return key, nil
	}
	key := make([]byte, 32)
	_, err := rand.Read(key)
	return key, err
}
