package claims_test

import (
	"errors"
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

// A client that gets 401 insufficient_claims from an API reads the claims
// request and asks Entra for a token carrying it (with MSAL for Go:
// confidential.WithClaims(ch.Claims) or public.WithClaims(ch.Claims)),
// then retries the call once.
func ExampleParseClaimsChallenge() {
	// resp.Header.Values("WWW-Authenticate") of the API's 401:
	values := []string{`Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", ` +
		`error="insufficient_claims", claims="eyJhY2Nlc3NfdG9rZW4iOnsiYWNycyI6eyJlc3NlbnRpYWwiOnRydWUsInZhbHVlIjoiYzEifX19"`}
	ch, err := claims.ParseClaimsChallenge(values...)
	if errors.Is(err, claims.ErrNoClaimsChallenge) {
		fmt.Println("an ordinary 401: no new token helps")
		return
	}
	fmt.Println(ch.Claims)
	// Output: {"access_token":{"acrs":{"essential":true,"value":"c1"}}}
}
