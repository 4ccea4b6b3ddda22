package claims_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/entragate/entragate/claims"
)

// readFixture reads a token payload recorded in the repository's testdata.
func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "payloads", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseNormalisesV1AndV2(t *testing.T) {
	v1, err := claims.Parse(readFixture(t, "v1-delegated.json"))
	if err != nil {
		t.Fatal(err)
	}
	v2, err := claims.Parse(readFixture(t, "v2-delegated.json"))
	if err != nil {
		t.Fatal(err)
	}
	app, err := claims.Parse(readFixture(t, "v2-app.json"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		got, want any
	}{
		{"v1 version", v1.Version, claims.Version1},
		{"v2 version", v2.Version, claims.Version2},
		{"v1 client app from appid", v1.ClientAppID, "c44b4083-3bb0-49c1-b47d-974e53cbdf3c"},
		{"v2 client app from azp", v2.ClientAppID, "c44b4083-3bb0-49c1-b47d-974e53cbdf3c"},
		{"v1 client auth from appidacr", v1.ClientAuth, claims.ClientAuthPublic},
		{"v2 client auth from azpacr", app.ClientAuth, claims.ClientAuthCertificate},
		{"v1 username from upn", v1.Username(), "ada@contoso.onmicrosoft.com"},
		{"v2 username from preferred_username", v2.Username(), "ada@contoso.onmicrosoft.com"},
		{"scp split on spaces", v2.Scopes, []string{"SecureData.Read", "User.Read"}},
		{"v1 audience", v1.Audience, []string{"api://6e74172b-be56-4843-9ff4-e66a39bb12e3"}},
		{"roles", app.Roles, []string{"SecureData.Read.All"}},
		{"app-only by idtyp", app.IsAppOnly(), true},
		{"user token is not app-only", v2.IsAppOnly(), false},
		{"wids", v2.DirectoryRoles, []string{"b79fbf4d-3ef9-4689-8143-76b194e85509"}},
		{"v1 group overage from _claim_names", v1.GroupOverage, true},
		{"v2 groups listed", v2.Groups, []string{"8a1c5f36-3e0a-4d1a-9a5c-0c6a0b3d0e11"}},
		{"exp as time", v2.ExpiresAt, time.Unix(1764094865, 0).UTC()},
		{"tenant", v2.TenantID, "72f988bf-86f1-41af-91ab-2d7cd011db47"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g, _ := json.Marshal(tc.got)
			w, _ := json.Marshal(tc.want)
			if string(g) != string(w) {
				t.Errorf("got %s, want %s", g, w)
			}
		})
	}
}

func TestParseRejectsWrongTypes(t *testing.T) {
	tests := []struct {
		name, payload, mention string
	}{
		{"exp as a string", `{"exp":"1764094865"}`, "exp"},
		{"exp as a fraction", `{"exp":1764094865.5}`, "exp"},
		{"exp with an exponent", `{"exp":1.7e9}`, "exp"},
		{"exp negative", `{"exp":-1}`, "exp"},
		{"exp beyond year 9999", `{"exp":99999999999999999999}`, "exp"},
		{"exp one second after year 9999", `{"exp":253402300800}`, "exp"},
		{"nbf as a string", `{"nbf":"0"}`, "nbf"},
		{"iat as a bool", `{"iat":true}`, "iat"},
		{"aud as a number", `{"aud":42}`, "aud"},
		{"aud as an object", `{"aud":{"a":1}}`, "aud"},
		{"aud array with a number", `{"aud":["x",1]}`, "aud"},
		{"scp as an array", `{"scp":["a"]}`, "scp"},
		{"roles as a string", `{"roles":"Admin"}`, "roles"},
		{"payload is an array", `[]`, "object"},
		{"payload is a string", `"x"`, "object"},
		{"payload is null", `null`, "object"},
		{"payload is empty", ``, "object"},
		{"payload is not JSON", `{"exp":`, "JSON"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := claims.Parse([]byte(tc.payload))
			if err == nil || c != nil {
				t.Fatalf("Parse(%s) = %v, nil; want an error", tc.payload, c)
			}
			if !errors.Is(err, claims.ErrMalformed) || !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("error %q: want ErrMalformed mentioning %q", err, tc.mention)
			}
		})
	}
}

func TestClaimNamesAreCaseSensitive(t *testing.T) {
	c, err := claims.Parse([]byte(`{"SCP":"Admin","Roles":["Admin"],"AUD":"api","Exp":"not a date"}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Scopes) != 0 || len(c.Roles) != 0 || !c.ExpiresAt.IsZero() || len(c.Audience) != 0 {
		t.Errorf("claims matched by case-insensitive names: %+v", c)
	}
	if v, ok := c.Get("SCP"); !ok || string(v) != `"Admin"` {
		t.Errorf("Get(SCP) = %s, %v: other spellings stay reachable by their own name", v, ok)
	}
}

// Names that differ only in case (or in Unicode case folding, as
// encoding/json compares them) are refused: a handler decoding Raw() with
// encoding/json would read either, and two tenant IDs are no tenant ID.
func TestClaimNamesDifferingOnlyInCaseAreRefused(t *testing.T) {
	for _, payload := range []string{
		`{"tid":"a","TID":"b"}`,
		`{"aud":"x","Aud":"y"}`,
		`{"roles":["A"],"ROLES":["B"]}`,
		`{"x_custom":1,"X_Custom":2}`,
		`{"sub":"a","\u017fub":"b"}`, // U+017F folds to s
		`{"kid":"a","\u212aid":"b"}`, // the Kelvin sign folds to k
	} {
		_, err := claims.Parse([]byte(payload))
		if !errors.Is(err, claims.ErrMalformed) || !strings.Contains(err.Error(), "differ in more than case") {
			t.Errorf("%s: %v, want ErrMalformed for names differing only in case", payload, err)
		}
	}
	// Beyond the names kept without allocating, the same rule holds.
	var b strings.Builder
	b.WriteString(`{`)
	for i := range 60 {
		fmt.Fprintf(&b, `"claim%d":%d,`, i, i)
	}
	b.WriteString(`"CLAIM55":1}`)
	if _, err := claims.Parse([]byte(b.String())); !errors.Is(err, claims.ErrMalformed) {
		t.Errorf("61 claims, two differing only in case: %v, want ErrMalformed", err)
	}
}

func TestGetAndDecodeReachAnyClaim(t *testing.T) {
	c, err := claims.Parse(readFixture(t, "v2-delegated.json"))
	if err != nil {
		t.Fatal(err)
	}
	raw, ok := c.Get("xms_tcdt")
	if !ok || string(raw) != "1615375629" {
		t.Errorf("Get(xms_tcdt) = %s, %v", raw, ok)
	}
	var tcdt int64
	if err := c.Decode("xms_tcdt", &tcdt); err != nil || tcdt != 1615375629 {
		t.Errorf("Decode(xms_tcdt) = %d, %v", tcdt, err)
	}
	if err := c.Decode("missing", &tcdt); !errors.Is(err, claims.ErrClaimNotFound) {
		t.Errorf("Decode(missing) = %v, want ErrClaimNotFound", err)
	}
	copied := *c // Claims values copy freely.
	if _, ok := copied.Get("aio"); !ok {
		t.Error("a copy lost access to the raw claims")
	}
	if !json.Valid(c.Raw()) {
		t.Error("Raw is not the JSON payload")
	}
}

func TestHelpersOnNilAndEmpty(t *testing.T) {
	var c *claims.Claims
	if c.HasScope("a") || c.HasRole("a") || c.IsAppOnly() || c.Username() != "" {
		t.Error("nil Claims must answer false/empty")
	}
	if _, ok := c.Get("sub"); ok {
		t.Error("nil Claims has no claims")
	}
	empty := &claims.Claims{Scopes: []string{"Files.Read"}, Roles: []string{"Admin"}}
	for _, tc := range []struct {
		name string
		got  bool
		want bool
	}{
		{"exact scope", empty.HasScope("Files.Read"), true},
		{"scope is case-sensitive", empty.HasScope("files.read"), false},
		{"scope prefix is not a match", empty.HasScope("Files"), false},
		{"exact role", empty.HasRole("Admin"), true},
		{"role is case-sensitive", empty.HasRole("admin"), false},
		{"token with scopes and no idtyp is delegated", empty.IsAppOnly(), false},
		{"idtyp user wins", (&claims.Claims{TokenType: "user"}).IsAppOnly(), false},
		{"no scopes and no idtyp is app-only", (&claims.Claims{Roles: []string{"R"}}).IsAppOnly(), true},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: got %v", tc.name, tc.got)
		}
	}
}

func TestContextRoundTrip(t *testing.T) {
	if _, ok := claims.FromContext(context.Background()); ok {
		t.Error("empty context has claims")
	}
	c := &claims.Claims{ObjectID: "x"}
	ctx := claims.NewContext(context.Background(), c)
	got, ok := claims.FromContext(ctx)
	if !ok || got == c || got.ObjectID != "x" {
		t.Errorf("FromContext = %p %v, %v; want a copy of %p", got, got, ok, c)
	}
	if again, _ := claims.FromContext(ctx); again != got {
		t.Error("one context gave two different copies")
	}
	if _, ok := claims.FromContext(claims.NewContext(context.Background(), nil)); ok {
		t.Error("a nil *Claims must not count as claims")
	}
	// Another package's string key of the same name cannot collide.
	type key string
	ctx = context.WithValue(context.Background(), key("claims"), c)
	if _, ok := claims.FromContext(ctx); ok {
		t.Error("FromContext read a foreign context key")
	}
}

func FuzzParse(f *testing.F) {
	for _, name := range []string{"v1-delegated.json", "v2-delegated.json", "v2-app.json"} {
		f.Add(readFixture(f, name))
	}
	f.Add([]byte(`{"exp":1,"aud":["a"],"scp":"a  b"}`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		c, err := claims.Parse(payload)
		if err != nil {
			if c != nil || !errors.Is(err, claims.ErrMalformed) {
				t.Fatalf("error %v with claims %v", err, c)
			}
			return
		}
		for _, s := range c.Scopes {
			if s == "" || strings.Contains(s, " ") {
				t.Fatalf("scope %q not split on spaces", s)
			}
		}
		if !c.ExpiresAt.IsZero() && (c.ExpiresAt.Year() > 9999 || c.ExpiresAt.Before(time.Unix(0, 0))) {
			t.Fatalf("exp %v out of range", c.ExpiresAt)
		}
		// Parsing is deterministic: the kept payload parses to the same claims.
		again, err := claims.Parse(c.Raw())
		if err != nil {
			t.Fatalf("Raw() no longer parses: %v", err)
		}
		a, _ := json.Marshal(c)
		b, _ := json.Marshal(again)
		if string(a) != string(b) {
			t.Fatalf("re-parse differs:\n%s\n%s", a, b)
		}
	})
}

func BenchmarkParse(b *testing.B) {
	payload := readFixture(b, "v2-delegated.json")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := claims.Parse(payload); err != nil {
			b.Fatal(err)
		}
	}
}

// Clone, and the copy NewContext stores, share nothing changeable with the
// original: every list, every pointer is its own, and appending to one
// list never writes over another.
func TestCloneSharesNothingChangeable(t *testing.T) {
	c, err := claims.Parse([]byte(`{"aud":"a","scp":"s1 s2","roles":["r"],"groups":["g"],"wids":["w"],"xms_cc":["cp1"],"acrs":["c1"],"acct":0,"x":1}`))
	if err != nil {
		t.Fatal(err)
	}
	fromContext := func(c *claims.Claims) *claims.Claims {
		got, _ := claims.FromContext(claims.NewContext(context.Background(), c))
		return got
	}
	for name, copyOf := range map[string]func(*claims.Claims) *claims.Claims{"Clone": (*claims.Claims).Clone, "NewContext": fromContext} {
		t.Run(name, func(t *testing.T) {
			orig := reflect.ValueOf(c).Elem()
			cp := copyOf(c)
			dup := reflect.ValueOf(cp).Elem()
			for i := range orig.NumField() {
				f := orig.Type().Field(i)
				if !f.IsExported() {
					continue
				}
				a, b := orig.Field(i), dup.Field(i)
				switch f.Type.Kind() {
				case reflect.Slice:
					if a.Len() == 0 {
						t.Errorf("the test payload leaves %s empty: it proves nothing about it", f.Name)
						continue
					}
					if a.Pointer() == b.Pointer() {
						t.Errorf("%s shares its array with the original", f.Name)
					}
					if b.Cap() != b.Len() {
						t.Errorf("%s has spare capacity %d: appending to it could write over another list", f.Name, b.Cap()-b.Len())
					}
				case reflect.Pointer, reflect.Map:
					if !a.IsNil() && a.Pointer() == b.Pointer() {
						t.Errorf("%s points where the original does", f.Name)
					}
				}
			}
			if !reflect.DeepEqual(c, cp) {
				t.Errorf("the copy differs from the original:\n%+v\n%+v", cp, c)
			}
		})
	}
}
