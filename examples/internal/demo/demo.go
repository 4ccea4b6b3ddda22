// Package demo is what the example APIs share, so that their main.go files
// show only what a user writes: configuration from the Azure SDK
// environment variables (or the offline fake tenant), the handlers of the
// /secure-data sample, and a graceful HTTP server.
package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/entragate/entragate/claims"
	"github.com/entragate/entragate/examples/internal/env"
	"github.com/entragate/entragate/middleware"
	"github.com/entragate/entragate/middleware/entratest"
)

// The sample API's permissions, as registered in Entra: a delegated scope
// for users and an application permission (app role) for daemons.
const (
	ReadScope = "SecureData.Read"
	ReadRole  = "SecureData.Read.All"
	// StepUpContext is the Conditional Access authentication context the
	// confidential route needs: in a real tenant, one an administrator
	// created and tied to a policy (MFA, a compliant device).
	StepUpContext = "c1"
)

// Setup is the API's configuration from the environment, and in offline
// mode the fake tenant it trusts. Build the Authenticator from Config.
type Setup struct {
	Config middleware.Config
	Tenant *entratest.Tenant // nil when configured for a real tenant
	Addr   string
	Logger *slog.Logger
	// MoreHelp, when set, prints more offline curl lines after the usual
	// ones, for a sample's routes of its own.
	MoreHelp func(w io.Writer, t *entratest.Tenant, base string)
}

// Close stops the fake tenant, if any.
func (s *Setup) Close() {
	if s.Tenant != nil {
		s.Tenant.Server().Close()
	}
}

// Offline mode listens here by default: the fake tenant's tokens must not
// open an API to the network.
const offlineAddr = "127.0.0.1:8080"

// The variables the API samples read.
var variables = []string{"AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_AUTHORITY_HOST"}

// Variables are the names FromEnv reads, for a sample that reads more of
// its own beside them (each env.Vars must know every AZURE_* name the
// process reads, or it takes the others for typos).
func Variables() []string {
	return append(slices.Clone(variables), "ALLOWED_TENANT_IDS", "ALLOW_ANY_TENANT", "ALLOW_PERSONAL_ACCOUNTS", "ADDR")
}

// FromEnv configures the API from the environment:
//
//	AZURE_TENANT_ID       the API's tenant (GUID or domain), or organizations
//	                      or common for a multi-tenant API
//	AZURE_CLIENT_ID       the API's application (client) ID
//	AZURE_AUTHORITY_HOST  optional: a sovereign cloud's authority host
//	ALLOWED_TENANT_IDS    multi-tenant only: comma-separated admitted tenants
//	ALLOW_ANY_TENANT      multi-tenant only: "true" admits every tenant
//	ALLOW_PERSONAL_ACCOUNTS  common only: "true" admits personal accounts
//	ADDR                  listen address (default :8080; offline 127.0.0.1:8080)
//
// With neither ID set it runs offline: it starts a fake tenant on loopback
// with signing keys generated at start-up, trusts it, and listens on
// loopback only. Every mistake is reported by the variable's name.
func FromEnv(stderr io.Writer) (*Setup, error) {
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	v := env.New(Variables()...)
	s := &Setup{Addr: v.String("ADDR"), Logger: logger, Config: middleware.Config{Logger: logger}}
	if !v.Any("AZURE_TENANT_ID", "AZURE_CLIENT_ID") {
		if v.Any("AZURE_AUTHORITY_HOST", "ALLOWED_TENANT_IDS", "ALLOW_ANY_TENANT", "ALLOW_PERSONAL_ACCOUNTS") {
			return nil, errors.New("AZURE_AUTHORITY_HOST, ALLOWED_TENANT_IDS, ALLOW_ANY_TENANT and ALLOW_PERSONAL_ACCOUNTS configure a real tenant: set AZURE_TENANT_ID and AZURE_CLIENT_ID too")
		}
		if err := v.Err(); err != nil {
			return nil, err
		}
		return s, s.offline()
	}
	if s.Addr == "" {
		s.Addr = ":8080"
	}
	s.Config.ClientID = v.GUID("AZURE_CLIENT_ID", "the application (client) ID of the API's app registration")
	v.Required("AZURE_CLIENT_ID", "the application (client) ID of the API's app registration")
	authority, err := authorityFromEnv(v)
	if err := errors.Join(v.Err(), err); err != nil {
		return nil, err
	}
	s.Config.Authorities = []middleware.Authority{authority}
	return s, nil
}

// offline points the configuration at a fake tenant started on loopback
// with keys of its own, and keeps the API on loopback too.
func (s *Setup) offline() error {
	addr, err := env.OfflineAddr(s.Addr, offlineAddr)
	if err != nil {
		return err
	}
	s.Addr = addr
	// Keys generated now, not the test keys published in the repository:
	// only this process can mint tokens the API accepts.
	srv, err := entratest.Start("127.0.0.1:0", entratest.FreshKeys())
	if err != nil {
		return fmt.Errorf("starting the offline fake tenant: %w", err)
	}
	s.Tenant = srv.NewTenant()
	s.Config.ClientID = s.Tenant.ClientID
	s.Config.Authorities = []middleware.Authority{s.Tenant.Authority()}
	return nil
}

// authorityFromEnv is the authority of a real tenant: one tenant, or a
// multi-tenant authority that must say which tenants it admits.
func authorityFromEnv(v *env.Vars) (middleware.Authority, error) {
	tenant := v.Required("AZURE_TENANT_ID", "the directory (tenant) ID of the API's app registration, one of its domains, or organizations or common")
	host := v.Host("AZURE_AUTHORITY_HOST")
	if host == "" {
		host = middleware.DefaultAuthorityHost
	}
	allowed, anyTenant, personal := v.GUIDs("ALLOWED_TENANT_IDS"), v.Bool("ALLOW_ANY_TENANT"), v.Bool("ALLOW_PERSONAL_ACCOUNTS")
	switch t := strings.ToLower(tenant); t {
	case middleware.Organizations, middleware.Common:
		if len(allowed) == 0 && !anyTenant {
			return middleware.Authority{}, fmt.Errorf("AZURE_TENANT_ID=%s makes a multi-tenant API: set ALLOWED_TENANT_IDS to the tenants it admits "+
				"(comma-separated), or ALLOW_ANY_TENANT=true to admit every tenant in the world", t)
		}
		if personal && t != middleware.Common {
			return middleware.Authority{}, errors.New("ALLOW_PERSONAL_ACCOUNTS=true needs AZURE_TENANT_ID=common: personal accounts sign in only there")
		}
		if anyTenant && len(allowed) > 0 {
			return middleware.Authority{}, errors.New("set ALLOWED_TENANT_IDS or ALLOW_ANY_TENANT=true, not both")
		}
		return middleware.EntraMultiTenant(t, middleware.TenantAdmission{
			AllowedTenantIDs: allowed, AllowAnyTenant: anyTenant, AllowPersonalAccounts: personal,
		}).WithHost(host), nil
	case "":
		return middleware.Authority{}, nil // reported by Required
	default:
		if len(allowed) > 0 || anyTenant || personal {
			return middleware.Authority{}, errors.New("ALLOWED_TENANT_IDS, ALLOW_ANY_TENANT and ALLOW_PERSONAL_ACCOUNTS apply to multi-tenant APIs (AZURE_TENANT_ID=organizations or common) only")
		}
		if !env.IsGUID(t) && !domainPattern.MatchString(t) {
			return middleware.Authority{}, fmt.Errorf("AZURE_TENANT_ID=%q is not a tenant ID (GUID), a domain (contoso.onmicrosoft.com), organizations or common", tenant)
		}
		return middleware.EntraTenant(t).WithHost(host), nil
	}
}

var domainPattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$`)

// Serve runs handler on s.Addr until SIGINT or SIGTERM, prints the offline
// curl lines once it listens, and shuts down gracefully.
func (s *Setup) Serve(name string, auth *middleware.Authenticator, handler http.Handler) error {
	return serve(s.Addr, s.Logger, handler, func(addr net.Addr) {
		base := BaseURL(addr)
		if s.Tenant != nil {
			PrintOfflineHelp(os.Stdout, s.Tenant, base)
			if s.MoreHelp != nil {
				s.MoreHelp(os.Stdout, s.Tenant, base)
			}
		}
		s.Logger.Info(name+" listening", "url", base, "keys_ready", auth.Ready())
	})
}

// Caller describes who called, for the JSON answers.
type Caller struct {
	Type        string   `json:"type"` // "user" or "app"
	Name        string   `json:"name"`
	ObjectID    string   `json:"object_id"`
	TenantID    string   `json:"tenant_id"`
	ClientAppID string   `json:"client_app_id"`
	Scopes      []string `json:"scopes,omitempty"`
	Roles       []string `json:"roles,omitempty"`
}

// CallerOf summarises validated claims.
func CallerOf(c *claims.Claims) Caller {
	caller := Caller{
		Type: "user", Name: c.Name, ObjectID: c.ObjectID, TenantID: c.TenantID,
		ClientAppID: c.ClientAppID, Scopes: c.Scopes, Roles: c.Roles,
	}
	if c.IsAppOnly() {
		caller.Type = "app"
		caller.Name = "app " + c.ClientAppID
	}
	if caller.Name == "" {
		caller.Name = c.Username()
	}
	return caller
}

// SecureData answers the protected sample resource with a greeting to the
// caller. It must be behind RequireAuth.
func SecureData(w http.ResponseWriter, r *http.Request) {
	c, ok := claims.FromContext(r.Context())
	if !ok {
		http.Error(w, "unauthenticated", http.StatusUnauthorized)
		return
	}
	caller := CallerOf(c)
	WriteJSON(w, http.StatusOK, map[string]any{
		"message": fmt.Sprintf("Hello %s, this is protected data.", caller.Name),
		"caller":  caller,
	})
}

// Confidential answers the step-up route, for users who satisfied the
// authentication context. It must be behind RequireAuth and the rule.
func Confidential(w http.ResponseWriter, r *http.Request) {
	c, ok := claims.FromContext(r.Context())
	if !ok {
		http.Error(w, "unauthenticated", http.StatusUnauthorized)
		return
	}
	caller := CallerOf(c)
	WriteJSON(w, http.StatusOK, map[string]any{
		"message":      fmt.Sprintf("Hello %s, this is confidential data: you verified your identity for it.", caller.Name),
		"auth_context": StepUpContext,
		"caller":       caller,
	})
}

// Me echoes the typed claims of the caller's token.
func Me(w http.ResponseWriter, r *http.Request) {
	c, ok := claims.FromContext(r.Context())
	if !ok {
		http.Error(w, "unauthenticated", http.StatusUnauthorized)
		return
	}
	WriteJSON(w, http.StatusOK, map[string]any{"caller": CallerOf(c), "claims": c})
}

// Healthz is the public liveness probe.
func Healthz(w http.ResponseWriter, _ *http.Request) {
	WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// Readyz is a readiness probe: 503 until the signing keys of every
// document the API reads are loaded, so a load balancer sends no traffic
// an instance cannot check. The body says which documents are not ready
// and when each last failed, not why: the reasons, which name internal
// URLs, go to the log (the middleware logs each failed load at Warn).
func Readyz(auth *middleware.Authenticator) http.HandlerFunc {
	type source struct {
		Authority   string `json:"authority"`
		Version     string `json:"version"`
		Policy      string `json:"policy,omitempty"`
		Ready       bool   `json:"ready"`
		LastFailure string `json:"last_failure,omitempty"`
		LastSuccess string `json:"last_success,omitempty"`
	}
	return func(w http.ResponseWriter, _ *http.Request) {
		var sources []source
		for _, s := range auth.Stats().Sources {
			src := source{Authority: s.Authority, Version: s.Version, Policy: s.Policy, Ready: s.Ready}
			if s.LastError != nil {
				src.LastFailure = s.LastErrorAt.UTC().Format(time.RFC3339)
			}
			if !s.LastSuccess.IsZero() {
				src.LastSuccess = s.LastSuccess.UTC().Format(time.RFC3339)
			}
			sources = append(sources, src)
		}
		if !auth.Ready() {
			w.Header().Set("Retry-After", "5")
			WriteJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "signing keys not loaded", "sources": sources})
			return
		}
		WriteJSON(w, http.StatusOK, map[string]any{"status": "ready", "sources": sources})
	}
}

// WriteJSON writes v as a JSON response.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// serve runs handler on addr until SIGINT or SIGTERM, then shuts down
// gracefully. ready is called with the listening address.
func serve(addr string, logger *slog.Logger, handler http.Handler, ready func(addr net.Addr)) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		// Bearer tokens are a few KiB; a cap keeps header floods cheap.
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	if ready != nil {
		ready(ln.Addr())
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(shutdownCtx)
}

// BaseURL is the URL clients use for a listening address.
func BaseURL(addr net.Addr) string {
	host, port, _ := net.SplitHostPort(addr.String())
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// PrintOfflineHelp prints ready-to-paste curl commands with fresh tokens
// from the fake tenant: a user with the scope, a daemon with the app role,
// and a user without the scope, who gets 403.
func PrintOfflineHelp(w io.Writer, t *entratest.Tenant, base string) {
	user := t.AccessToken(entratest.Scopes(ReadScope))
	daemon := t.AppToken(entratest.Roles(ReadRole))
	noScope := t.AccessToken(entratest.Scopes("Profile.Read"))
	steppedUp := t.AccessToken(entratest.Scopes(ReadScope), entratest.AuthContexts(StepUpContext))
	lines := []string{
		"entragate sample API, OFFLINE MODE: this API trusts a local fake Entra tenant, not Microsoft.",
		"  It accepts only tokens minted by this process (signing keys generated at start-up)",
		"  and listens on loopback only. Set AZURE_TENANT_ID and AZURE_CLIENT_ID for a real tenant.",
		"  fake tenant " + t.ID + ", API client ID " + t.ClientID + ", authority " + t.Server().URL,
		"Tokens below are valid for " + entratest.DefaultLifetime.String() + ".",
		"",
		"# public",
		"curl -i " + base + "/healthz",
		"# a user with scope " + ReadScope + " (200)",
		`curl -i -H "Authorization: Bearer ` + user + `" ` + base + "/secure-data",
		"# a daemon app with app role " + ReadRole + " (200)",
		`curl -i -H "Authorization: Bearer ` + daemon + `" ` + base + "/secure-data",
		"# a user without the scope (403 insufficient_scope)",
		`curl -i -H "Authorization: Bearer ` + noScope + `" ` + base + "/secure-data",
		"# no token (401)",
		"curl -i " + base + "/secure-data",
		"# the same user, on the route that needs authentication context " + StepUpContext + ": 401 insufficient_claims,",
		"# with the claims challenge a client answers by signing the user in again with those claims",
		`curl -i -H "Authorization: Bearer ` + user + `" ` + base + "/secure-data/confidential",
		"# a user who stepped up: acrs holds " + StepUpContext + " (200)",
		`curl -i -H "Authorization: Bearer ` + steppedUp + `" ` + base + "/secure-data/confidential",
		"# a daemon: app-only tokens cannot satisfy an authentication context (403)",
		`curl -i -H "Authorization: Bearer ` + daemon + `" ` + base + "/secure-data/confidential",
		"# the caller's typed claims",
		`curl -i -H "Authorization: Bearer ` + user + `" ` + base + "/me",
		"",
	}
	fmt.Fprintln(w, strings.Join(lines, "\n"))
}
