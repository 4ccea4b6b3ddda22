// Command devtenant runs entragate's fake Entra ID tenant as a standalone
// development server, for work in other languages or with curl.
//
//	go run ./examples/devtenant                      # serve on 127.0.0.1:9999
//	go run ./examples/devtenant -kind app -roles SecureData.Read.All
//
// It prints its metadata URL, the environment that points an API at it, and
// a token of the requested kind. More tokens, on request:
//
//	curl 'http://127.0.0.1:9999/dev/token?kind=user&scopes=SecureData.Read'
//	curl 'http://127.0.0.1:9999/dev/token?kind=app&roles=SecureData.Read.All&version=1'
//	curl 'http://127.0.0.1:9999/dev/token?kind=user&acrs=c1&xms_cc=cp1'
//
// kind is user (delegated access token, the default), app (client
// credentials) or id (ID token); version is 1 or 2 (default 2); scopes
// (default SecureData.Read, for user tokens only: app tokens never carry
// scopes) and roles are comma-separated. acrs lists the Conditional Access
// authentication contexts the user satisfied (a step-up: user tokens
// only), xms_cc the client's capabilities (cp1: it handles claims
// challenges). The flags take the same values with the same defaults. The
// signing keys are generated at start-up.
package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/entragate/entragate/middleware/entratest"
)

// Fixed IDs, so that an API configured once keeps working across restarts.
const (
	defaultTenantID = "7e57e57e-0000-4000-8000-00000000d0e5"
	defaultClientID = "7e57e57e-0000-4000-8000-0000000a9100"
)

// tokenRequest is what a token is minted from: the start-up flags, or the
// /dev/token query parameters, with the same defaults.
type tokenRequest struct {
	kind    string // user, app or id
	version string // 1 or 2
	scopes  string // comma-separated, user tokens only
	roles   string // comma-separated
	acrs    string // comma-separated authentication contexts, user tokens only
	xmsCC   string // comma-separated client capabilities
}

var defaultRequest = tokenRequest{kind: "user", version: "2", scopes: "SecureData.Read"}

func main() {
	addr := flag.String("addr", "127.0.0.1:9999", "loopback `address` to listen on")
	tenantID := flag.String("tenant", defaultTenantID, "tenant ID (GUID)")
	clientID := flag.String("client", defaultClientID, "the API's application (client) ID (GUID)")
	var req tokenRequest
	flag.StringVar(&req.kind, "kind", defaultRequest.kind, "token to print at start-up: user, app or id")
	flag.StringVar(&req.version, "version", defaultRequest.version, "token version: 1 or 2")
	flag.StringVar(&req.scopes, "scopes", defaultRequest.scopes, "comma-separated delegated scopes, for user tokens")
	flag.StringVar(&req.roles, "roles", defaultRequest.roles, "comma-separated app roles")
	flag.StringVar(&req.acrs, "acrs", "", "comma-separated authentication contexts the user satisfied (step-up), e.g. c1")
	flag.StringVar(&req.xmsCC, "xms_cc", "", "comma-separated client capabilities, e.g. cp1")
	flag.Parse()
	if _, err := mint(nil, req); err != nil { // refuse bad flags before listening
		fmt.Fprintln(os.Stderr, "devtenant:", err)
		os.Exit(2)
	}

	// Keys generated now: tokens this server mints can be minted by no one
	// else. An API pointed at it reloads them by itself after a restart.
	srv, err := entratest.Start(*addr, entratest.FreshKeys())
	if err != nil {
		fmt.Fprintln(os.Stderr, "devtenant:", err)
		os.Exit(2)
	}
	defer srv.Close()
	tenant := srv.NewTenant(entratest.WithTenantID(*tenantID), entratest.WithClientID(*clientID))
	srv.Handle("GET /dev/token", tokenHandler(tenant))

	first, err := mint(tenant, req)
	if err != nil {
		fmt.Fprintln(os.Stderr, "devtenant:", err)
		os.Exit(2)
	}
	fmt.Printf(`entragate dev tenant on %[1]s
  metadata (v2): %[2]s
  metadata (v1): %[1]s/%[3]s/.well-known/openid-configuration
Point an API at it:
  export AZURE_TENANT_ID=%[3]s AZURE_CLIENT_ID=%[4]s AZURE_AUTHORITY_HOST=%[1]s
More tokens: curl '%[1]s/dev/token?kind=app&roles=SecureData.Read.All'
A %[5]s token (v%[6]s):
%[7]s
`, srv.URL, tenant.MetadataURL(), tenant.ID, tenant.ClientID, req.kind, req.version, first)

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	<-stop
}

// tokenHandler mints a token per request: ?kind=user|app|id&version=1|2
// &scopes=a,b&roles=c,d, each defaulting as the flags do.
func tokenHandler(tenant *entratest.Tenant) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		req := defaultRequest
		for name, field := range map[string]*string{"kind": &req.kind, "version": &req.version, "scopes": &req.scopes, "roles": &req.roles,
			"acrs": &req.acrs, "xms_cc": &req.xmsCC} {
			if q.Has(name) {
				*field = q.Get(name)
			}
		}
		if q.Get("kind") == "app" && !q.Has("scopes") {
			req.scopes = "" // the default scopes are for user tokens
		}
		tok, err := mint(tenant, req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, tok)
	})
}

// mint mints the token req asks for, refusing what Entra would never issue.
// With a nil tenant it only checks req.
func mint(t *entratest.Tenant, req tokenRequest) (string, error) {
	var opts []entratest.TokenOption
	switch req.version {
	case "2":
	case "1":
		opts = append(opts, entratest.V1())
	default:
		return "", fmt.Errorf("unknown token version %q: use 1 or 2", req.version)
	}
	if req.roles != "" {
		opts = append(opts, entratest.Roles(split(req.roles)...))
	}
	if req.xmsCC != "" {
		opts = append(opts, entratest.ClientCapabilities(split(req.xmsCC)...))
	}
	switch req.kind {
	case "user", "id":
		if req.scopes != "" {
			opts = append(opts, entratest.Scopes(split(req.scopes)...))
		}
		if req.acrs != "" {
			opts = append(opts, entratest.AuthContexts(split(req.acrs)...))
		}
	case "app":
		if req.scopes != "" && req.scopes != defaultRequest.scopes {
			return "", fmt.Errorf("app tokens carry no scopes (scp): Entra issues them for app roles only; use -roles")
		}
		if req.acrs != "" {
			return "", fmt.Errorf("app tokens carry no authentication contexts (acrs): only a user's sign-in satisfies one")
		}
	default:
		return "", fmt.Errorf("unknown token kind %q: use user, app or id", req.kind)
	}
	if t == nil {
		return "", nil
	}
	switch req.kind {
	case "app":
		return t.AppToken(opts...), nil
	case "id":
		return t.IDToken(opts...), nil
	}
	return t.AccessToken(opts...), nil
}
func split(list string) []string {
	var out []string
	for _, v := range strings.Split(list, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}
