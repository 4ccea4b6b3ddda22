package entratest

import (
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// A federated token issued in the future (beyond the clock skew) is
// refused like an expired one, however short its stated lifetime.
func TestFederatedTokenFromTheFuture(t *testing.T) {
	tenant := NewTenant(t)
	srv := tenant.Server()
	cluster := srv.NewWorkloadIssuer("aks")
	app := tenant.RegisterApp(App{Name: "job", Federated: []FederatedCredential{{Issuer: cluster.URL, Subject: "system:serviceaccount:a:b"}}})
	sign := func(iat time.Time) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"iss": cluster.URL, "sub": "system:serviceaccount:a:b",
			"aud": []string{TokenExchangeAudience}, "iat": iat.Unix(), "exp": iat.Add(10 * time.Minute).Unix()})
		tok.Header["kid"] = cluster.key.ID
		raw, err := tok.SignedString(cluster.key.priv)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	if e := srv.federatedAssertion(app, sign(time.Now()), cluster.URL); e != nil {
		t.Fatalf("a current token: %v", e)
	}
	if e := srv.federatedAssertion(app, sign(time.Now().Add(20*time.Hour)), cluster.URL); e == nil {
		t.Error("a token issued 20 hours ahead was accepted")
	}
}
