// Command middletier is a middle-tier API protected by entragate: a web
// app calls it with a user's token, and it calls the sample API and
// Microsoft Graph as that user, with on-behalf-of tokens from MSAL for Go.
// When Entra needs the user for that (consent, a Conditional Access
// step-up), it answers its caller 401 with the claims challenge the web
// app acts on. With REDIS_URL its instances share their on-behalf-of
// tokens, sealed, in Redis.
//
//	cd examples/middletier && go run .
//
//	GET /chain    scope access_as_user: the sample API's /secure-data and Graph's /me, as the caller
//	GET /healthz  GET /readyz
//
// Against a real tenant: AZURE_TENANT_ID, AZURE_CLIENT_ID and
// AZURE_CLIENT_SECRET (the middle tier's registration), DOWNSTREAM_URL and
// DOWNSTREAM_SCOPE (the sample API and its api://<api>/SecureData.Read),
// optionally AZURE_AUTHORITY_HOST, GRAPH_URL, REDIS_URL with
// TOKEN_CACHE_KEY (32 bytes, base64, the same for every instance), and
// ADDR (default 127.0.0.1:8090).
//
// With none of them it runs offline: a fake tenant (with the web app's,
// the middle tier's and the sample API's registrations), the sample API
// and the middle tier, on loopback, and prints the environment that runs
// web app instances against them (examples/webapp).
package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"
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
	s, err := start(ctx, logger, "")
	if err != nil {
		fmt.Fprintln(os.Stderr, "middletier:", err)
		os.Exit(1)
	}
	defer s.Close()
	if s.offline != nil {
		s.printOfflineHelp(os.Stdout)
	}
	logger.Info("middle tier listening", "url", s.URL)
	<-ctx.Done()
}

// variables are what the middle tier reads.
var variables = []string{"AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_AUTHORITY_HOST",
	"DOWNSTREAM_URL", "DOWNSTREAM_SCOPE", "GRAPH_URL", "REDIS_URL", "TOKEN_CACHE_KEY", "ADDR"}

// settings is the middle tier's configuration.
type settings struct {
	host, tenantID, clientID, secret string
	downstreamURL, downstreamScope   string
	graphURL, redisURL, addr         string
	cacheKey                         []byte
	client                           *http.Client
	instanceDiscovery                bool
	provider                         *entragate.Provider // offline: the stack's
}

// service is a running middle tier, and offline what it talks to.
type service struct {
	URL      string
	tempDir  string // what printOfflineHelp wrote, removed by Close
	redisURL string // the middle tier's own, which the web apps it prints for share
	auth     *entragate.Authenticator
	own      *entragate.Provider
	server   *http.Server
	redis    *redis.Client
	offline  *offline.Stack
	mid      clientApp
}

type clientApp struct{ ID, Secret string }

func (s *service) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.server.Shutdown(ctx)
	s.auth.Close()
	if s.own != nil {
		s.own.Close()
	}
	if s.redis != nil {
		s.redis.Close()
	}
	if s.tempDir != "" {
		_ = os.RemoveAll(s.tempDir)
	}
	if s.offline != nil {
		s.offline.Close()
	}
}

// start configures the middle tier from the environment (offline without
// it) and serves it on addr (ADDR when empty).
func start(ctx context.Context, logger *slog.Logger, addr string) (*service, error) {
	v := env.New(variables...)
	if addr == "" {
		addr = v.String("ADDR")
	}
	var cfg settings
	var off *offline.Stack
	var mid clientApp
	var err error
	if v.Any("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET") {
		cfg, err = fromEnv(v, addr)
	} else if err = v.Err(); err == nil {
		cfg, off, mid, err = startOffline(ctx, v, addr)
	}
	if err != nil {
		return nil, err
	}
	s, err := serve(ctx, logger, cfg)
	if err != nil {
		if off != nil {
			off.Close()
		}
		return nil, err
	}
	s.offline, s.mid = off, mid
	return s, nil
}

func fromEnv(v *env.Vars, addr string) (settings, error) {
	cfg := settings{addr: addr, client: &http.Client{Timeout: 30 * time.Second}}
	cfg.tenantID = v.GUID("AZURE_TENANT_ID", "the directory (tenant) ID of the middle tier's registration")
	v.Required("AZURE_TENANT_ID", "the directory (tenant) ID of the middle tier's registration")
	cfg.clientID = v.GUID("AZURE_CLIENT_ID", "the application (client) ID of the middle tier's registration")
	v.Required("AZURE_CLIENT_ID", "the application (client) ID of the middle tier's registration")
	cfg.secret = v.Required("AZURE_CLIENT_SECRET", "a client secret of the middle tier's registration")
	cfg.downstreamURL = v.Required("DOWNSTREAM_URL", "the URL of the API the middle tier calls (the sample API)")
	cfg.downstreamScope = v.Required("DOWNSTREAM_SCOPE", "the scope it calls that API with, api://<api-client-id>/SecureData.Read")
	cfg.host, cfg.graphURL = v.Host("AZURE_AUTHORITY_HOST"), v.String("GRAPH_URL")
	if err := redisSettings(v, &cfg); err != nil {
		return cfg, err
	}
	if err := v.Err(); err != nil {
		return cfg, err
	}
	if cfg.host == "" {
		cfg.host = entragate.DefaultAuthorityHost
	}
	if cfg.graphURL == "" {
		cfg.graphURL = "https://graph.microsoft.com"
	}
	if cfg.addr == "" {
		cfg.addr = "127.0.0.1:8090"
	}
	cfg.instanceDiscovery = env.InstanceDiscovery(cfg.host)
	return cfg, nil
}

// redisSettings reads REDIS_URL and TOKEN_CACHE_KEY, which go together.
func redisSettings(v *env.Vars, cfg *settings) error {
	cfg.redisURL = v.String("REDIS_URL")
	key := v.String("TOKEN_CACHE_KEY")
	switch {
	case cfg.redisURL == "" && key == "":
		return nil
	case cfg.redisURL == "":
		return errors.New("TOKEN_CACHE_KEY is set without REDIS_URL")
	case key == "":
		return errors.New("REDIS_URL needs TOKEN_CACHE_KEY: 32 random bytes, base64 (openssl rand -base64 32), the same for every instance")
	}
	b, err := base64.StdEncoding.DecodeString(key)
	if err != nil || len(b) != 32 {
		return errors.New("TOKEN_CACHE_KEY must be 32 bytes, base64-encoded (openssl rand -base64 32)")
	}
	if _, err := redis.ParseURL(cfg.redisURL); err != nil {
		return fmt.Errorf("REDIS_URL: %w", err)
	}
	cfg.cacheKey = b
	return nil
}

// serve builds the Authenticator (the middle tier's audience), MSAL's
// client, the shared on-behalf-of cache if configured, and the routes.
func serve(ctx context.Context, logger *slog.Logger, cfg settings) (*service, error) {
	s := &service{}
	p := cfg.provider
	var err error
	if p == nil {
		if p, err = entragate.NewProvider(ctx, entragate.ProviderConfig{
			Authorities: []entragate.Authority{entragate.EntraTenant(cfg.tenantID).WithHost(cfg.host)}, HTTPClient: cfg.client, Logger: logger,
		}); err != nil {
			return nil, err
		}
		s.own = p
	}
	fail := func(err error) (*service, error) {
		if s.own != nil {
			s.own.Close()
		}
		return nil, err
	}
	if s.auth, err = p.NewAuthenticator(entragate.APIConfig{ClientID: cfg.clientID, Logger: logger}); err != nil {
		return fail(err)
	}
	cred, err := confidential.NewCredFromSecret(cfg.secret)
	if err != nil {
		return fail(err)
	}
	// No external cache for MSAL: its on-behalf-of flow does not work with
	// one (see middleware/tokencache); the shared cache sits in front.
	client, err := confidential.New(cfg.host+"/"+cfg.tenantID, cfg.clientID, cred,
		confidential.WithHTTPClient(cfg.client), confidential.WithInstanceDiscovery(cfg.instanceDiscovery))
	if err != nil {
		return fail(err)
	}
	var tokens oboTokens = msalOnly{client}
	if cfg.redisURL != "" {
		s.redisURL = cfg.redisURL
		opts, _ := redis.ParseURL(cfg.redisURL)
		s.redis = redis.NewClient(opts)
		store, err := tokencache.New(tokencache.Config{Redis: s.redis, Key: cfg.cacheKey, Prefix: "entragate:middletier:", Logger: logger})
		if err != nil {
			return fail(err)
		}
		tokens = store.OnBehalfOf(client, "obo")
	}
	ch := &chain{auth: s.auth, tokens: tokens, downstreamURL: cfg.downstreamURL, downstreamScope: cfg.downstreamScope,
		graphURL: cfg.graphURL, client: cfg.client, logger: logger}
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return fail(err)
	}
	s.URL = "http://" + ln.Addr().String()
	s.server = &http.Server{Handler: ch.routes(), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := s.server.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("serving", "error", err)
		}
	}()
	return s, nil
}

// The web app instances of offline mode, and where they listen.
var webAppAddrs = []string{"localhost:8000", "localhost:8001"}

// startOffline starts the fake tenant (TLS: MSAL requires https) with
// the registrations of the chain, and the sample API.
func startOffline(ctx context.Context, v *env.Vars, addr string) (settings, *offline.Stack, clientApp, error) {
	addr, err := env.OfflineAddr(addr, "127.0.0.1:8090")
	if err != nil {
		return settings{}, nil, clientApp{}, err
	}
	var redirects []string
	for _, a := range webAppAddrs {
		base := "http://" + a
		redirects = append(redirects, base+"/get_token", base+"/", base+"/signed-out")
	}
	off, err := offline.Start(ctx, redirects...)
	if err != nil {
		return settings{}, nil, clientApp{}, err
	}
	mid := off.RegisterMiddleTier()
	srv := off.Tenant.Server()
	cfg := settings{host: srv.URL, tenantID: off.Tenant.ID, clientID: mid.ClientID, secret: mid.Secret,
		downstreamURL: off.APIURL, downstreamScope: off.ReadScope, graphURL: srv.URL, addr: addr,
		client: srv.Client(), provider: off.Provider}
	if err := redisSettings(v, &cfg); err != nil {
		off.Close()
		return settings{}, nil, clientApp{}, err
	}
	return cfg, off, clientApp{mid.ClientID, mid.Secret}, nil
}

// printOfflineHelp prints how to run web app instances against the
// offline chain.
func (s *service) printOfflineHelp(w io.Writer) {
	// The fake tenant's certificate, for the web app instances: in a
	// directory of this run's own, removed when it stops.
	dir, err := os.MkdirTemp("", "entragate-middletier-")
	if err != nil {
		fmt.Fprintln(w, "middletier:", err)
		return
	}
	s.tempDir = dir
	envs, err := s.webAppEnv(dir)
	if err != nil {
		fmt.Fprintln(w, "middletier:", err)
		return
	}
	fmt.Fprintf(w, `entragate middle tier, OFFLINE MODE: a fake Entra tenant, the sample API (%s) and this middle tier (%s), on loopback.
Run the web app against them, in one or more instances that share sessions and tokens through Redis
(%s; start one first if none runs: redis-server --port 6379 --bind 127.0.0.1 --save '' &):

  cd examples/webapp
  export %s
  ADDR=%s go run . &    # one instance
  ADDR=%s go run . &    # another: sign in on one, use the other

Then open http://%s, sign in, and open "Calling other APIs".
`, s.offline.APIURL, s.URL, cmp.Or(s.redisURL, "redis://127.0.0.1:6379/0"), strings.Join(envs, " \\\n    "), webAppAddrs[0], webAppAddrs[1], webAppAddrs[0])
}

// webAppEnv is the environment of a web app instance against the offline
// chain; the fake tenant's certificate is written under dir.
func (s *service) webAppEnv(dir string) ([]string, error) {
	srv := s.offline.Tenant.Server()
	certFile := filepath.Join(dir, "entragate-fake-tenant.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		return nil, err
	}
	sessionKey, cacheKey := make([]byte, 32), make([]byte, 32)
	_, _ = rand.Read(sessionKey)
	_, _ = rand.Read(cacheKey)
	return []string{
		"AZURE_TENANT_ID=" + s.offline.Tenant.ID, "AZURE_CLIENT_ID=" + s.offline.WebApp.ClientID,
		"AZURE_CLIENT_SECRET=" + s.offline.WebApp.Secret, "AZURE_AUTHORITY_HOST=" + srv.URL,
		"AUTHORITY_BROWSER_HOST=" + srv.PlainURL(), "SSL_CERT_FILE=" + certFile,
		"API_SCOPES='" + s.offline.ReadScope + " " + s.offline.BasicScope + "'", "API_URL=" + s.offline.APIURL,
		"MIDDLE_TIER_URL=" + s.URL, "MIDDLE_TIER_SCOPES=api://" + s.mid.ID + "/" + middleScope, "GRAPH_URL=" + srv.URL,
		"REDIS_URL=" + cmp.Or(s.redisURL, "redis://127.0.0.1:6379/0"),
		"SESSION_KEY=" + base64.StdEncoding.EncodeToString(sessionKey), "TOKEN_CACHE_KEY=" + base64.StdEncoding.EncodeToString(cacheKey),
	}, nil
}
