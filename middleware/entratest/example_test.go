package entratest_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/entragate/entragate/claims"
	"github.com/entragate/entragate/middleware"
	"github.com/entragate/entragate/middleware/entratest"
)

// A user's handler, tested with realistic tokens from the fake tenant. In a
// test function, entratest.NewTenant(t) replaces the first three lines.
func Example() {
	srv := entratest.NewServer()
	defer srv.Close()
	tenant := srv.NewTenant()

	auth, err := middleware.New(context.Background(), tenant.Config())
	if err != nil {
		panic(err)
	}
	defer auth.Close()

	orders := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := claims.FromContext(r.Context())
		fmt.Fprintf(w, "orders of %s", c.Name)
	})
	h := auth.RequireAuth(middleware.RequireAnyScope("Orders.Read")(orders))

	for _, token := range []string{
		tenant.AccessToken(entratest.Scopes("Orders.Read")),
		tenant.AccessToken(entratest.Scopes("Profile.Read")),
		tenant.AccessToken(entratest.Scopes("Orders.Read"), entratest.Expired()),
	} {
		req := httptest.NewRequest(http.MethodGet, "/orders", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		fmt.Println(rec.Code, rec.Header().Get("WWW-Authenticate"), rec.Body.String())
	}
	// Output:
	// 200  orders of Ada Lovelace
	// 403 Bearer error="insufficient_scope", error_description="the token needs one of the scopes: Orders.Read", scope="Orders.Read" {"error":"insufficient_scope","error_description":"the token needs one of the scopes: Orders.Read"}
	//
	// 401 Bearer error="invalid_token", error_description="the token is expired" {"error":"invalid_token","error_description":"the token is expired"}
}

// Simulating an outage, then a key rotation.
func ExampleServer_SetFault() {
	srv := entratest.NewServer()
	defer srv.Close()
	tenant := srv.NewTenant()
	cfg := tenant.Config()
	cfg.MinLoadInterval = time.Second // retry quickly, for the example

	srv.SetFault(entratest.All, entratest.Unavailable)
	auth, err := middleware.New(context.Background(), cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer auth.Close()
	_, err = auth.Validate(context.Background(), tenant.AccessToken())
	var e *middleware.Error
	errors.As(err, &e)
	fmt.Println("provider down:", e.Status, errors.Is(err, middleware.ErrKeysUnavailable))

	srv.SetFault(entratest.All, entratest.NoFault)
	for !auth.Ready() {
		time.Sleep(10 * time.Millisecond)
		_, _ = auth.Validate(context.Background(), tenant.AccessToken())
	}
	fmt.Println("provider back:", auth.Ready())

	srv.RotateKey()
	token := tenant.AccessToken()       // signed with the new key
	time.Sleep(1100 * time.Millisecond) // a new key is looked for at most once per MinLoadInterval
	_, err = auth.Validate(context.Background(), token)
	fmt.Println("new key accepted:", err == nil)
	// Output:
	// provider down: 503 true
	// provider back: true
	// new key accepted: true
}

// Testing a multi-tenant API: tenants of one server share its keys and the
// API's client ID, the server answers common and organizations too, and
// the API's authority is EntraMultiTenant on the server's URL.
func ExampleServer_multiTenant() {
	srv := entratest.NewServer()
	defer srv.Close()
	apiID := entratest.NewGUID()
	customer := srv.NewTenant(entratest.WithClientID(apiID))
	stranger := srv.NewTenant(entratest.WithClientID(apiID))

	auth, err := middleware.New(context.Background(), middleware.Config{
		ClientID: apiID,
		Authorities: []middleware.Authority{
			middleware.EntraMultiTenant(middleware.Organizations, middleware.TenantAdmission{
				AllowedTenantIDs: []string{customer.ID},
			}).WithHost(srv.URL), // in production: no WithHost, Entra's own host
		},
	})
	if err != nil {
		panic(err)
	}
	defer auth.Close()

	for name, token := range map[string]string{
		"customer, v2":   customer.AccessToken(),
		"customer, v1":   customer.AccessToken(entratest.V1()),
		"stranger":       stranger.AccessToken(),
		"customer's tid": stranger.AccessToken(entratest.Claim("tid", customer.ID)),
	} {
		verdict := "accepted"
		if _, err := auth.Validate(context.Background(), token); err != nil {
			verdict = middleware.ReasonName(err)
		}
		fmt.Printf("%s: %s\n", name, verdict)
	}
	// Unordered output:
	// customer, v2: accepted
	// customer, v1: accepted
	// stranger: tenant_not_allowed
	// customer's tid: invalid_issuer
}
