// Package entratest is a fake Microsoft Entra ID tenant for tests and local
// development, in the spirit of net/http/httptest: a loopback server that
// serves Entra-shaped OpenID metadata and signing keys, mints the tokens a
// real API receives, and simulates key rotation and outages.
//
// A handler test needs a tenant, an authenticator that trusts it, and tokens:
//
//	func TestOrders(t *testing.T) {
//		tenant := entratest.NewTenant(t) // closed when the test ends
//		auth, err := middleware.New(t.Context(), tenant.Config())
//		if err != nil {
//			t.Fatal(err)
//		}
//		defer auth.Close()
//		h := auth.RequireAuth(middleware.RequireAnyScope("Orders.Read")(ordersHandler))
//
//		req := httptest.NewRequest("GET", "/orders", nil)
//		req.Header.Set("Authorization", "Bearer "+tenant.AccessToken(entratest.Scopes("Orders.Read")))
//		rec := httptest.NewRecorder()
//		h.ServeHTTP(rec, req)
//		if rec.Code != http.StatusOK {
//			t.Fatalf("status %d", rec.Code)
//		}
//	}
//
// Tokens: AccessToken mints a delegated (user) token, AppToken an app-only
// (client credentials) token, IDToken an ID token; V1 switches any of them
// to the v1.0 format. Their claims and headers are those Entra issues today,
// and every one can be changed or removed with a TokenOption to build the
// bad cases: Expired, Audience, Issuer, Claim, WithoutClaim, Header,
// WithoutHeader, SignedWith(server.NewKey()) for a key the tenant never
// published.
//
// Sign-in: registered apps (Tenant.RegisterApp) sign users in through the
// authorize, token and logout endpoints, with the sign-in, consent and
// step-up pages a browser test can click: a claims request for an
// authentication context (what a claims challenge asks a client to send)
// shows the step-up page, and the tokens that follow carry acrs; a refresh
// token without the step-up answers interaction_required. Graph's /me and
// transitiveMemberOf answer the Graph tokens the token endpoint issued;
// users in more than GroupOverageLimit groups get Entra's overage claims
// instead of groups.
//
// Keys and faults: Server.RotateKey, PublishKey and RetireKey change the
// published key set; SetFault takes endpoints down (5xx), makes them hang or
// answer garbage; SetDelay slows them; Requests counts what each endpoint
// received, so a test can assert how often keys were fetched.
//
// Tenants on one Server share its keys, as Entra tenants do. Keys come from
// a pre-generated pool, so creating servers and tenants costs no RSA key
// generation. The keys are public test keys: never trust them anywhere.
// A Server listens only on loopback; for a standalone development tenant see
// examples/devtenant.
package entratest
