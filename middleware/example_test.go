package middleware_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/entragate/entragate/claims"
	"github.com/entragate/entragate/middleware"
	"github.com/entragate/entragate/middleware/entratest"
)

// Protecting chi routes: authentication for a group, a permission per route.
func ExampleAuthenticator_RequireAuth() {
	srv := entratest.NewServer() // a real API sets TenantID and ClientID instead
	defer srv.Close()
	tenant := srv.NewTenant()

	auth, err := middleware.New(context.Background(), tenant.Config())
	if err != nil {
		panic(err)
	}
	defer auth.Close()

	r := chi.NewRouter()
	r.Group(func(r chi.Router) {
		r.Use(auth.RequireAuth)
		r.With(middleware.RequireScopeOrRole([]string{"SecureData.Read"}, []string{"SecureData.Read.All"})).
			Get("/secure-data", func(w http.ResponseWriter, r *http.Request) {
				c, _ := claims.FromContext(r.Context())
				fmt.Fprintf(w, "hello %s (app-only: %v)", c.Name, c.IsAppOnly())
			})
	})

	call := func(authorization string) {
		req := httptest.NewRequest(http.MethodGet, "/secure-data", nil)
		if authorization != "" {
			req.Header.Set("Authorization", authorization)
		}
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, req)
		fmt.Println(strings.TrimSpace(fmt.Sprint(rec.Code, " ", rec.Header().Get("WWW-Authenticate"))))
	}
	call("Bearer " + tenant.AccessToken(entratest.Scopes("SecureData.Read")))
	call("Bearer " + tenant.AppToken(entratest.Roles("SecureData.Read.All")))
	call("Bearer " + tenant.AccessToken(entratest.Scopes("Other")))
	call("")
	call("Bearer " + tenant.IDToken())
	// Output:
	// 200
	// 200
	// 403 Bearer error="insufficient_scope", error_description="the token needs one of the scopes: SecureData.Read, or one of the app roles: SecureData.Read.All", scope="SecureData.Read"
	// 401 Bearer
	// 401 Bearer error="invalid_token", error_description="the token is an ID token (it carries nonce, at_hash or c_hash); send an access token for this API"
}

// Validating a token outside HTTP, e.g. in a gRPC interceptor.
func ExampleAuthenticator_Validate() {
	srv := entratest.NewServer()
	defer srv.Close()
	tenant := srv.NewTenant()
	auth, _ := middleware.New(context.Background(), tenant.Config())
	defer auth.Close()

	c, err := auth.Validate(context.Background(), tenant.AccessToken(entratest.V1(), entratest.Scopes("Files.Read")))
	fmt.Println(c.Version, c.Name, c.Scopes, err)

	_, err = auth.Validate(context.Background(), tenant.AccessToken(entratest.Expired()))
	var e *middleware.Error
	if errors.As(err, &e) {
		fmt.Println(e.Status, e.Code, errors.Is(err, middleware.ErrTokenExpired))
	}
	// Output:
	// 1.0 Ada Lovelace [Files.Read] <nil>
	// 401 invalid_token true
}

// Guards work with the standard library's ServeMux too.
func ExampleRequireAnyRole() {
	srv := entratest.NewServer()
	defer srv.Close()
	tenant := srv.NewTenant()
	auth, _ := middleware.New(context.Background(), tenant.Config())
	defer auth.Close()

	mux := http.NewServeMux()
	mux.Handle("POST /jobs", auth.RequireAuth(middleware.RequireAnyRole("Jobs.Run")(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusAccepted) }))))

	for _, roles := range [][]string{{"Jobs.Run"}, {"Jobs.Read"}} {
		req := httptest.NewRequest(http.MethodPost, "/jobs", nil)
		req.Header.Set("Authorization", "Bearer "+tenant.AppToken(entratest.Roles(roles...)))
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		fmt.Println(roles, rec.Code)
	}
	// Output:
	// [Jobs.Run] 202
	// [Jobs.Read] 403
}

// One Provider for a process: two APIs and a web app share its documents
// and keys, each with its own rules.
func ExampleProvider() {
	srv := entratest.NewServer()
	defer srv.Close()
	tenant := srv.NewTenant()
	ctx := context.Background()

	p, err := middleware.NewProvider(ctx, middleware.ProviderConfig{
		Authorities: []middleware.Authority{tenant.Authority()}, // a real one: EntraTenant(tenantID)
	})
	if err != nil {
		panic(err)
	}
	defer p.Close()
	orders, _ := p.NewAuthenticator(middleware.APIConfig{ClientID: tenant.ClientID, Scopes: []string{"Orders.Read"}})
	reports, _ := p.NewAuthenticator(middleware.APIConfig{ClientID: tenant.ClientID, Roles: []string{"Reports.Read.All"}})
	web, _ := p.NewIDTokenVerifier(middleware.IDTokenConfig{ClientID: tenant.ClientApp})

	user := tenant.AccessToken(entratest.Scopes("Orders.Read"))
	_, err = orders.Validate(ctx, user)
	fmt.Println("orders, user:", err)
	_, err = reports.Validate(ctx, user)
	fmt.Println("reports, user:", errors.Is(err, middleware.ErrInsufficientScope))
	c, err := web.Verify(ctx, tenant.IDToken(entratest.Audience(tenant.ClientApp), entratest.Nonce("n-1")), "n-1")
	fmt.Println("web app sign-in:", c.Name, err)
	fmt.Println("key sets fetched:", srv.Requests(entratest.Keys))
	// Output:
	// orders, user: <nil>
	// reports, user: true
	// web app sign-in: Ada Lovelace <nil>
	// key sets fetched: 2
}

// A transport without a module of its own validates and authorizes in one
// call, and answers with the *Error's caller-safe fields.
func ExampleAuthenticator_Authorize() {
	srv := entratest.NewServer()
	defer srv.Close()
	tenant := srv.NewTenant()
	auth, _ := middleware.New(context.Background(), tenant.Config())
	defer auth.Close()
	canApprove := middleware.ScopeOrRole([]string{"Orders.Approve"}, []string{"Orders.Approve.All"})

	for _, token := range []string{
		tenant.AccessToken(entratest.Scopes("Orders.Approve")),
		tenant.AccessToken(entratest.Scopes("Orders.Read")),
	} {
		_, err := auth.Authorize(context.Background(), token, canApprove)
		var e *middleware.Error
		if errors.As(err, &e) {
			fmt.Println(e.Status, middleware.ReasonName(e), e.Scopes)
			continue
		}
		fmt.Println("approved")
	}
	// Output:
	// approved
	// 403 insufficient_scope [Orders.Approve]
}

// Counting decisions by outcome and reason, as a metrics exporter would.
func ExampleObserver() {
	srv := entratest.NewServer()
	defer srv.Close()
	tenant := srv.NewTenant()
	counts := map[string]int{}
	cfg := tenant.Config()
	cfg.Observer = middleware.Observer{
		Decision: func(_ context.Context, d middleware.Decision) {
			counts[d.Outcome.String()+" "+middleware.ReasonName(d.Reason)]++
		},
	}
	auth, _ := middleware.New(context.Background(), cfg)
	defer auth.Close()

	good := tenant.AccessToken()
	for range 3 {
		_, _ = auth.Validate(context.Background(), good)
	}
	_, _ = auth.Validate(context.Background(), tenant.AccessToken(entratest.Expired()))
	fmt.Println(counts["accepted "], counts["refused token_expired"])
	// Output: 3 1
}
