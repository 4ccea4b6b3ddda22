package claims_test

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/entragate/entragate/claims"
)

// Challenges as Microsoft's services and documentation send them, and the
// shapes RFC 9110 allows around them.
func TestParseClaimsChallenge(t *testing.T) {
	acrsC1 := `{"access_token":{"acrs":{"essential":true,"value":"c1"}}}`
	urlSafe := `{"access_token":{"acrs":{"essential":true,"values":["c1","c2"]}},"id_token":{"n":"??>"}}`
	tests := []struct {
		name    string
		values  []string
		claims  string
		realm   string
		authURI string
	}{
		{"the claims-challenge article, cp1 (padded)", []string{
			`Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", error="insufficient_claims", claims="eyJhY2Nlc3NfdG9rZW4iOnsiYWNycyI6eyJlc3NlbnRpYWwiOnRydWUsInZhbHVlIjoiY3AxIn19fQ=="`,
		}, `{"access_token":{"acrs":{"essential":true,"value":"cp1"}}}`, "", "https://login.microsoftonline.com/common/oauth2/authorize"},
		{"the claims-challenge article, c1 (no padding needed)", []string{
			`Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", error="insufficient_claims", claims="eyJhY2Nlc3NfdG9rZW4iOnsiYWNycyI6eyJlc3NlbnRpYWwiOnRydWUsInZhbHVlIjoiYzEifX19"`,
		}, acrsC1, "", "https://login.microsoftonline.com/common/oauth2/authorize"},
		{"SharePoint's revoked-session challenge: no spaces, commas inside quotes", []string{
			`Bearer realm="6c482541-f706-4168-9e58-8e35a9992f58",client_id="00000003-0000-0ff1-ce00-000000000000",trusted_issuers="00000001-0000-0000-c000-000000000000@*,D3776938-3DBA-481F-A652-4BEDFCAB7CD8@*,https://sts.windows.net/*/,00000003-0000-0ff1-ce00-000000000000@90140122-8516-11e1-8eff-49304924019b",authorization_uri="https://login.windows.net/common/oauth2/authorize",error="insufficient_claims",claims="eyJhY2Nlc3NfdG9rZW4iOnsibmJmIjp7ImVzc2VudGlhbCI6dHJ1ZSwgInZhbHVlIjoiMTU5Nzk1OTA5MCJ9fX0="`,
		}, `{"access_token":{"nbf":{"essential":true, "value":"1597959090"}}}`, "6c482541-f706-4168-9e58-8e35a9992f58", "https://login.windows.net/common/oauth2/authorize"},
		{"Graph's challenge with client_id, and Key Vault's resource challenge in another header", []string{
			`Bearer authorization="https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47", resource="https://vault.azure.net"`,
			`Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000", error="insufficient_claims", claims="` + base64.StdEncoding.EncodeToString([]byte(acrsC1)) + `"`,
		}, acrsC1, "", "https://login.microsoftonline.com/common/oauth2/authorize"},
		{"several challenges in one header, the claims challenge last", []string{
			`Basic realm="legacy", Negotiate YWJjZA==, Bearer realm="contoso", error="insufficient_claims", claims="` + base64.StdEncoding.EncodeToString([]byte(acrsC1)) + `"`,
		}, acrsC1, "contoso", ""},
		{"a PoP challenge, names and the error in other cases, spaces around =", []string{
			`pop Realm = "", ERROR="Insufficient_Claims", Claims="` + base64.StdEncoding.EncodeToString([]byte(acrsC1)) + `"`,
		}, acrsC1, "", ""},
		{"a proxy's malformed challenge before the claims challenge", []string{
			`Negotiate realm="a`,
			`Basic realm="x", realm="y"`,
			`Bearer error="insufficient_claims", claims="` + base64.StdEncoding.EncodeToString([]byte(acrsC1)) + `"`,
		}, acrsC1, "", ""},
		{"URL-safe base64 without padding, an escaped quote elsewhere", []string{
			`Bearer error_description="say \"again\"", error=insufficient_claims, claims="` + base64.RawURLEncoding.EncodeToString([]byte(urlSafe)) + `"`,
		}, urlSafe, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ch, err := claims.ParseClaimsChallenge(tc.values...)
			if err != nil {
				t.Fatal(err)
			}
			if ch.Claims != tc.claims || ch.Realm != tc.realm || ch.AuthorizationURI != tc.authURI {
				t.Errorf("got %+v\nwant claims %s, realm %q, authorization_uri %q", ch, tc.claims, tc.realm, tc.authURI)
			}
		})
	}
}

// Without a claims challenge there is nothing to retry with: ErrNoClaimsChallenge
// for challenges of other kinds, a descriptive error for broken ones.
func TestParseClaimsChallengeRefusals(t *testing.T) {
	obj := base64.StdEncoding.EncodeToString([]byte(`{"access_token":{}}`))
	tests := []struct {
		name   string
		values []string
		none   bool   // ErrNoClaimsChallenge
		says   string // else the error mentions
	}{
		{"no header", nil, true, ""},
		{"a plain invalid_token challenge", []string{`Bearer realm="api", error="invalid_token", error_description="expired"`}, true, ""},
		{"claims on another error", []string{`Bearer error="invalid_token", claims="` + obj + `"`}, true, ""},
		{"another scheme", []string{`Basic error="insufficient_claims", claims="` + obj + `"`}, true, ""},
		{"no claims parameter", []string{`Bearer error="insufficient_claims"`}, false, "without a claims parameter"},
		{"claims not base64", []string{`Bearer error="insufficient_claims", claims="not base64!"`}, false, "not base64"},
		{"claims not a JSON object", []string{`Bearer error="insufficient_claims", claims="` + base64.StdEncoding.EncodeToString([]byte(`["c1"]`)) + `"`}, false, "not a JSON object"},
		{"unterminated quote", []string{`Bearer error="insufficient_claims", claims="` + obj}, false, "closing quote"},
		{"a parameter repeated", []string{`Bearer error="insufficient_claims", claims="` + obj + `", claims="` + obj + `"`}, false, "repeats"},
		{"a parameter before any scheme", []string{`="x"`}, false, "malformed"},
		{"claims that are JSON null", []string{`Bearer error="insufficient_claims", claims="bnVsbA=="`}, false, "not a JSON object"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := claims.ParseClaimsChallenge(tc.values...)
			switch {
			case tc.none && !errors.Is(err, claims.ErrNoClaimsChallenge):
				t.Errorf("%v, want ErrNoClaimsChallenge", err)
			case !tc.none && (err == nil || errors.Is(err, claims.ErrNoClaimsChallenge) || !strings.Contains(err.Error(), tc.says)):
				t.Errorf("%v, want an error saying %q", err, tc.says)
			}
		})
	}
}

func FuzzParseClaimsChallenge(f *testing.F) {
	f.Add(`Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", error="insufficient_claims", claims="eyJhY2Nlc3NfdG9rZW4iOnsiYWNycyI6eyJlc3NlbnRpYWwiOnRydWUsInZhbHVlIjoiYzEifX19"`)
	f.Add(`Basic realm="x", Negotiate abc==, Bearer error=insufficient_claims, claims=e30`)
	f.Fuzz(func(t *testing.T, v string) {
		ch, err := claims.ParseClaimsChallenge(v)
		if err == nil && (!strings.HasPrefix(ch.Claims, "{") || ch.Claims == "null") {
			t.Errorf("claims %q from %q are not an object", ch.Claims, v)
		}
	})
}
