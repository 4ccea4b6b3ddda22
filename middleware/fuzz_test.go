package middleware_test

import (
	"bufio"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/entragate/entragate/claims"
	"github.com/entragate/entragate/middleware"
	"github.com/entragate/entragate/middleware/entratest"
)

// seedLines reads a seed file from the repository's testdata/fuzz.
func seedLines(f *testing.F, name string) []string {
	f.Helper()
	file, err := os.Open(filepath.Join("..", "testdata", "fuzz", name))
	if err != nil {
		f.Fatal(err)
	}
	defer file.Close()
	var lines []string
	sc := bufio.NewScanner(file)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if line := sc.Text(); !strings.HasPrefix(line, "#") {
			lines = append(lines, line)
		}
	}
	if err := sc.Err(); err != nil {
		f.Fatal(err)
	}
	return lines
}

// mintedSeeds are valid tokens of every kind, and near misses.
func mintedSeeds(tenant *entratest.Tenant) []string {
	return []string{
		tenant.AccessToken(),
		tenant.AccessToken(entratest.V1()),
		tenant.AppToken(entratest.Roles("R")),
		tenant.AppToken(entratest.V1(), entratest.Roles("R")),
		tenant.IDToken(),
		tenant.AccessToken(entratest.Expired()),
		tenant.AccessToken(entratest.SignedWith(tenant.Server().NewKey())),
	}
}

// independentlyValid re-checks an accepted token with golang-jwt and the
// tenant's published keys, restating every rule without sharing code with
// the middleware.
func independentlyValid(tenant *entratest.Tenant, raw string) error {
	tok, err := jwt.NewParser(jwt.WithValidMethods([]string{"RS256"}), jwt.WithExpirationRequired(),
		jwt.WithLeeway(5*time.Minute), jwt.WithAudience(tenant.ClientID, "api://"+tenant.ClientID)).
		Parse(raw, func(t *jwt.Token) (any, error) {
			if kid, _ := t.Header["kid"].(string); kid == "" {
				return nil, errors.New("no kid")
			}
			for _, k := range tenant.Server().PublishedKeys() {
				if k.ID == t.Header["kid"] {
					return k.PublicKey(), nil
				}
			}
			return nil, errors.New("kid not published")
		})
	if err != nil {
		return err
	}
	m := tok.Claims.(jwt.MapClaims)
	iss, _ := m["iss"].(string)
	ver, _ := m["ver"].(string)
	switch {
	case m["tid"] != tenant.ID:
		return errors.New("tid")
	case !(iss == tenant.IssuerV2() && ver == "2.0") && !(iss == tenant.IssuerV1() && ver == "1.0"):
		return errors.New("iss/ver")
	case m["scp"] == nil && m["roles"] == nil:
		return errors.New("neither scp nor roles")
	}
	if _, crit := tok.Header["crit"]; crit {
		return errors.New("crit")
	}
	return nil
}

func FuzzValidate(f *testing.F) {
	tenant := entratest.NewTenant(f)
	a := newAuth(f, tenant)
	for _, s := range append(seedLines(f, "tokens.txt"), mintedSeeds(tenant)...) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		c, err := a.Validate(t.Context(), raw)
		if err != nil {
			var e *middleware.Error
			if c != nil || !errors.As(err, &e) || !slices.Contains([]int{401, 403, 503}, e.Status) || e.Description == "" {
				t.Fatalf("error %#v (claims %v): want a described *Error with 401, 403 or 503", err, c)
			}
			return
		}
		if verr := independentlyValid(tenant, raw); verr != nil {
			t.Fatalf("accepted a token an independent check refuses (%v): %q", verr, raw)
		}
	})
}

func FuzzAuthorizationHeader(f *testing.F) {
	tenant := entratest.NewTenant(f)
	a := newAuth(f, tenant)
	h := a.RequireAuth(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := claims.FromContext(r.Context()); !ok {
			http.Error(w, "handler reached without claims", http.StatusTeapot)
		}
	}))
	for _, s := range seedLines(f, "authorization.txt") {
		f.Add(s)
	}
	for _, s := range mintedSeeds(tenant) {
		f.Add("Bearer " + s)
	}
	f.Fuzz(func(t *testing.T, value string) {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Header["Authorization"] = []string{value}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case 200:
			tok := value[strings.IndexAny(value, " \t")+1:]
			if verr := independentlyValid(tenant, strings.TrimSpace(tok)); verr != nil {
				t.Fatalf("let through a request an independent check refuses (%v): %q", verr, value)
			}
		case 400, 401, 403:
			if !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), "Bearer") {
				t.Fatalf("%d without a Bearer challenge for %q", rec.Code, value)
			}
		case 503:
			if rec.Header().Get("Retry-After") == "" {
				t.Fatalf("503 without Retry-After for %q", value)
			}
		default:
			t.Fatalf("status %d for %q: %s", rec.Code, value, rec.Body)
		}
	})
}
