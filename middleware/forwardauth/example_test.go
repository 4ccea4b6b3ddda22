package forwardauth_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"

	"github.com/entragate/entragate/middleware"
	"github.com/entragate/entragate/middleware/entratest"
	"github.com/entragate/entragate/middleware/forwardauth"
)

// The check nginx's auth_request sends, and the answer whose headers it
// passes upstream.
func Example() {
	tenant := entratest.NewServer().NewTenant()
	defer tenant.Server().Close()
	auth, err := middleware.New(context.Background(), tenant.Config())
	if err != nil {
		panic(err)
	}
	defer auth.Close()
	var h *forwardauth.Handler

	h, err = forwardauth.New(forwardauth.Config{
		Authenticator:   auth,
		Gateway:         forwardauth.Nginx,
		TrustedNetworks: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
		Routes: []forwardauth.Route{
			{Path: "/healthz", Public: true},
			{Path: "/api/orders", Rule: middleware.AnyScope("Orders.Read")},
		},
	})
	if err != nil {
		panic(err)
	}
	req := httptest.NewRequest(http.MethodGet, "/_entragate", nil)
	req.RemoteAddr = "127.0.0.1:51000" // nginx, on this machine
	req.Header.Set("X-Original-Method", "GET")
	req.Header.Set("X-Original-URI", "/api/orders/42?page=2")
	req.Header.Set("Authorization", "Bearer "+tenant.AccessToken(entratest.Scopes("Orders.Read")))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	fmt.Println(rec.Code, rec.Header().Get("X-Entra-Token-Type"), rec.Header().Get("X-Entra-Scopes"))
	// Output: 200 user Orders.Read
}
