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
