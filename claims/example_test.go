package claims_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/entragate/entragate/claims"
)

// A handler behind entragate's RequireAuth reads the caller from the context.
func ExampleFromContext() {
	handler := func(w http.ResponseWriter, r *http.Request) {
		c, ok := claims.FromContext(r.Context())
		if !ok {
			http.Error(w, "unauthenticated", http.StatusUnauthorized)
			return
		}
		if c.IsAppOnly() {
			fmt.Fprintf(w, "daemon %s with roles %v", c.ClientAppID, c.Roles)
			return
		}
		fmt.Fprintf(w, "%s (%s) in tenant %s", c.Name, c.ObjectID, c.TenantID)
	}

	// The middleware does this after validating the token.
	c := &claims.Claims{Name: "Ada Lovelace", ObjectID: "690222be", TenantID: "72f988bf", Scopes: []string{"Files.Read"}}
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req = req.WithContext(claims.NewContext(req.Context(), c))
	rec := httptest.NewRecorder()
	handler(rec, req)
	fmt.Println(rec.Body.String())
	// Output: Ada Lovelace (690222be) in tenant 72f988bf
}

// Claims without a field of their own are reachable by name.
func ExampleClaims_Decode() {
	c, _ := claims.Parse([]byte(`{"ver":"2.0","scp":"Files.Read","xms_cc":["cp1"],"ctry":"FR"}`))
	var country string
	_ = c.Decode("ctry", &country)
	fmt.Println(country, c.ClientCapabilities, c.HasScope("Files.Read"))
	// Output: FR [cp1] true
}
