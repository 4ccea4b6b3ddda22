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
//
// kind is user (delegated access token), app (client credentials) or id (ID
// token); version is 1 or 2 (default 2); scopes and roles are comma-separated.
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

// Fixed IDs, so that an API configured once keeps working across restarts
// (the signing key is the first of entratest's fixed pool, too).
const (
	defaultTenantID = "7e57e57e-0000-4000-8000-00000000d0e5"
	defaultClientID = "7e57e57e-0000-4000-8000-0000000a9100"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9999", "loopback `address` to listen on")
	tenantID := flag.String("tenant", defaultTenantID, "tenant ID (GUID)")
	clientID := flag.String("client", defaultClientID, "the API's application (client) ID (GUID)")
	kind := flag.String("kind", "user", "token to print at start-up: user, app or id")
	version := flag.Int("version", 2, "token version: 1 or 2")
	scopes := flag.String("scopes", "SecureData.Read", "comma-separated delegated scopes for user tokens")
	roles := flag.String("roles", "", "comma-separated app roles")
	flag.Parse()

	srv, err := entratest.Start(*addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "devtenant:", err)
		os.Exit(2)
	}
	defer srv.Close()
	tenant := srv.NewTenant(entratest.WithTenantID(*tenantID), entratest.WithClientID(*clientID))

	srv.Handle("GET /dev/token", tokenHandler(tenant))

	first, err := mint(tenant, *kind, *version, *scopes, *roles)
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
A %[5]s token (v%[6]d):
%[7]s
`, srv.URL, tenant.MetadataURL(), tenant.ID, tenant.ClientID, *kind, *version, first)

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	<-stop
}

// tokenHandler mints a token per request: ?kind=user|app|id&version=1|2
// &scopes=a,b&roles=c,d.
func tokenHandler(tenant *entratest.Tenant) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		v := 2
		if q.Get("version") == "1" {
			v = 1
		}
		tok, err := mint(tenant, q.Get("kind"), v, q.Get("scopes"), q.Get("roles"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, tok)
	})
}

func mint(t *entratest.Tenant, kind string, version int, scopes, roles string) (string, error) {
	var opts []entratest.TokenOption
	if version == 1 {
		opts = append(opts, entratest.V1())
	}
	if scopes != "" {
		opts = append(opts, entratest.Scopes(split(scopes)...))
	}
	if roles != "" {
		opts = append(opts, entratest.Roles(split(roles)...))
	}
	switch kind {
	case "", "user":
		return t.AccessToken(opts...), nil
	case "app":
		return t.AppToken(opts...), nil
	case "id":
		return t.IDToken(opts...), nil
	}
	return "", fmt.Errorf("unknown token kind %q: use user, app or id", kind)
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
