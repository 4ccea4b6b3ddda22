package main

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	jwtmiddleware "github.com/auth0/go-jwt-middleware/v2"
	"github.com/auth0/go-jwt-middleware/v2/jwks"
	"github.com/auth0/go-jwt-middleware/v2/validator"
	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-chi/jwtauth/v5"
	"github.com/golang-jwt/jwt/v5"
	ljwt "github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/entragate/entragate/claims"
	"github.com/entragate/entragate/middleware"
	"github.com/entragate/entragate/middleware/entratest"
)

// setup is one fake tenant, its tokens, and every middleware under test
// configured for it: the same request, the same keys, the same checks
// (signature, RS256 only, issuer, audience, expiry) where each library
// offers them.
type setup struct {
	tenant   *entratest.Tenant
	tokens   []string // distinct valid tokens
	peers    []peer
	closeAll []func()
}

// peer is one middleware protecting a handler that reads the caller's
// name from whatever the middleware hands it.
type peer struct {
	name    string
	handler http.Handler
}

// poolSize is how many distinct tokens are minted: first-seen requests
// cycle through them, and entragate's cache is kept smaller than that.
const poolSize = 2048

func newSetup(ctx context.Context) (*setup, error) {
	srv := entratest.NewServer()
	s := &setup{tenant: srv.NewTenant(), closeAll: []func(){srv.Close}}
	for i := range poolSize {
		s.tokens = append(s.tokens, s.tenant.AccessToken(
			entratest.Scopes("SecureData.Read", "User.Read"),
			entratest.Claim("sid", entratest.NewGUID()),
			entratest.Claim("xms_tcdt", 1615375629+i)))
	}
	builders := []struct {
		name  string
		build func(context.Context, *entratest.Tenant) (http.Handler, func(), error)
	}{
		{"entragate", entragate},
		{"entragate (cache off)", entragateNoCache},
		{"golang-jwt + keyfunc", bareJWT},
		{"coreos/go-oidc v3", goOIDC},
		{"auth0/go-jwt-middleware v2", auth0},
		{"go-chi/jwtauth v5", chiJWTAuth},
	}
	for _, b := range builders {
		h, stop, err := b.build(ctx, s.tenant)
		if err != nil {
			s.close()
			return nil, fmt.Errorf("%s: %w", b.name, err)
		}
		s.closeAll = append(s.closeAll, stop)
		s.peers = append(s.peers, peer{b.name, h})
	}
	return s, nil
}

func (s *setup) close() {
	for i := len(s.closeAll) - 1; i >= 0; i-- {
		s.closeAll[i]()
	}
}

// fail is what every handler answers when it finds no caller name: the
// benchmark checks for it.
const fail = http.StatusTeapot

func nameHandler(name func(*http.Request) string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if name(r) == "" {
			w.WriteHeader(fail)
		}
	})
}

func entragateWith(ctx context.Context, t *entratest.Tenant, cacheSize int) (http.Handler, func(), error) {
	cfg := t.Config()
	cfg.TokenCacheSize = cacheSize
	a, err := middleware.New(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	return a.RequireAuth(nameHandler(func(r *http.Request) string {
		c, _ := claims.FromContext(r.Context())
		return c.Name
	})), func() { a.Close() }, nil
}

func entragate(ctx context.Context, t *entratest.Tenant) (http.Handler, func(), error) {
	return entragateWith(ctx, t, poolSize/2)
}

func entragateNoCache(ctx context.Context, t *entratest.Tenant) (http.Handler, func(), error) {
	return entragateWith(ctx, t, -1)
}

func jwksURL(t *entratest.Tenant) string {
	return t.Server().URL + "/" + t.ID + "/discovery/v2.0/keys"
}

// entraClaims is the typed claims struct a bare golang-jwt user writes.
type entraClaims struct {
	jwt.RegisteredClaims
	Name string `json:"name"`
	Scp  string `json:"scp"`
	Tid  string `json:"tid"`
}

// claimsKey carries a hand-written middleware's claims to the handler.
type claimsKey struct{}

// handWritten is the middleware a team writes around a verifier: take the
// bearer token, verify it into entraClaims, hand them to the handler.
func handWritten(verify func(ctx context.Context, raw string) (*entraClaims, error)) http.Handler {
	next := nameHandler(func(r *http.Request) string {
		c, _ := r.Context().Value(claimsKey{}).(*entraClaims)
		return c.Name
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		c, err := verify(r.Context(), raw)
		if err != nil {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), claimsKey{}, c)))
	})
}

// bareJWT is what a team writes by hand: keyfunc for the JWKS, golang-jwt
// with the options that matter.
func bareJWT(ctx context.Context, t *entratest.Tenant) (http.Handler, func(), error) {
	ctx, cancel := context.WithCancel(ctx)
	kf, err := keyfunc.NewDefaultCtx(ctx, []string{jwksURL(t)})
	if err != nil {
		cancel()
		return nil, nil, err
	}
	parser := jwt.NewParser(jwt.WithValidMethods([]string{"RS256"}), jwt.WithIssuer(t.IssuerV2()),
		jwt.WithAudience(t.ClientID), jwt.WithExpirationRequired(), jwt.WithLeeway(5*time.Minute))
	return handWritten(func(_ context.Context, raw string) (*entraClaims, error) {
		var c entraClaims
		_, err := parser.ParseWithClaims(raw, &c, kf.Keyfunc)
		return &c, err
	}), cancel, nil
}

// goOIDC verifies with coreos/go-oidc's remote key set, as its users
// protect APIs.
func goOIDC(ctx context.Context, t *entratest.Tenant) (http.Handler, func(), error) {
	p, err := oidc.NewProvider(ctx, t.IssuerV2())
	if err != nil {
		return nil, nil, err
	}
	v := p.Verifier(&oidc.Config{ClientID: t.ClientID, SupportedSigningAlgs: []string{oidc.RS256}})
	return handWritten(func(ctx context.Context, raw string) (*entraClaims, error) {
		tok, err := v.Verify(ctx, raw)
		if err != nil {
			return nil, err
		}
		var c entraClaims
		return &c, tok.Claims(&c)
	}), func() {}, nil
}

// auth0Claims carries the name into auth0's ValidatedClaims.
type auth0Claims struct {
	Name string `json:"name"`
	Scp  string `json:"scp"`
}

func (c *auth0Claims) Validate(context.Context) error { return nil }

// auth0 uses auth0/go-jwt-middleware v2 with its caching JWKS provider.
func auth0(_ context.Context, t *entratest.Tenant) (http.Handler, func(), error) {
	issuer, err := url.Parse(t.IssuerV2())
	if err != nil {
		return nil, nil, err
	}
	provider := jwks.NewCachingProvider(issuer, time.Hour)
	v, err := validator.New(provider.KeyFunc, validator.RS256, t.IssuerV2(), []string{t.ClientID},
		validator.WithCustomClaims(func() validator.CustomClaims { return &auth0Claims{} }),
		validator.WithAllowedClockSkew(5*time.Minute))
	if err != nil {
		return nil, nil, err
	}
	mw := jwtmiddleware.New(v.ValidateToken)
	return mw.CheckJWT(nameHandler(func(r *http.Request) string {
		c, _ := r.Context().Value(jwtmiddleware.ContextKey{}).(*validator.ValidatedClaims)
		if c == nil {
			return ""
		}
		return c.CustomClaims.(*auth0Claims).Name
	})), func() {}, nil
}

// chiJWTAuth uses go-chi/jwtauth v5, which verifies with one key (it has no
// key-set fetching of its own).
func chiJWTAuth(_ context.Context, t *entratest.Tenant) (http.Handler, func(), error) {
	ja := jwtauth.New("RS256", nil, t.Server().SigningKey().PublicKey(),
		ljwt.WithIssuer(t.IssuerV2()), ljwt.WithAudience(t.ClientID), ljwt.WithAcceptableSkew(5*time.Minute))
	next := nameHandler(func(r *http.Request) string {
		_, c, err := jwtauth.FromContext(r.Context())
		if err != nil {
			return ""
		}
		name, _ := c["name"].(string)
		return name
	})
	return jwtauth.Verifier(ja)(jwtauth.Authenticator(ja)(next)), func() {}, nil
}

// floorClaims are the claims a verifier must decode to decide on an Entra
// access token.
type floorClaims struct {
	Ver   string          `json:"ver"`
	Iss   string          `json:"iss"`
	Aud   json.RawMessage `json:"aud"`
	Tid   string          `json:"tid"`
	Oid   string          `json:"oid"`
	Sub   string          `json:"sub"`
	Name  string          `json:"name"`
	Azp   string          `json:"azp"`
	Scp   string          `json:"scp"`
	Roles []string        `json:"roles"`
	Exp   int64           `json:"exp"`
	Nbf   int64           `json:"nbf"`
	Iat   int64           `json:"iat"`
}

// floor is what any verifier pays for a token it has never seen: SHA-256
// of the signing input, an RSA-2048 PKCS#1 v1.5 verification, and decoding
// the claims.
func floor(pub *rsa.PublicKey, tok string) error {
	dot := strings.LastIndexByte(tok, '.')
	first := strings.IndexByte(tok, '.')
	sig, err := base64.RawURLEncoding.DecodeString(tok[dot+1:])
	if err != nil {
		return err
	}
	sum := sha256.Sum256([]byte(tok[:dot]))
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig); err != nil {
		return err
	}
	payload, err := base64.RawURLEncoding.DecodeString(tok[first+1 : dot])
	if err != nil {
		return err
	}
	var c floorClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		return err
	}
	if c.Name == "" {
		return errors.New("no name")
	}
	return nil
}
