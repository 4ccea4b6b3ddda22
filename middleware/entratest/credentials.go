package entratest

import (
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Client credentials without secrets: a client assertion (RFC 7523) signed
// with one of the app's certificates, or a token of an external issuer the
// app's registration trusts (a federated identity credential, what AKS
// workload identity gives a pod in AZURE_FEDERATED_TOKEN_FILE).

// TokenExchangeAudience is the audience Entra requires of federated
// credentials' tokens.
const TokenExchangeAudience = "api://AzureADTokenExchange"

const clientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// maxAssertionLifetime bounds a certificate assertion's lifetime.
const maxAssertionLifetime = time.Hour

// CertificatePEM is the key's certificate and private key in PEM, as a
// certificate credential's file holds them (AZURE_CLIENT_CERTIFICATE_PATH).
func (k *Key) CertificatePEM() []byte {
	der, err := x509.MarshalPKCS8PrivateKey(k.priv)
	if err != nil {
		panic("entratest: " + err.Error())
	}
	return append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: k.cert}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})...)
}

// X509 is the key's certificate, for App.Certificates.
func (k *Key) X509() *x509.Certificate {
	c, err := x509.ParseCertificate(k.cert)
	if err != nil {
		panic("entratest: " + err.Error())
	}
	return c
}

// WorkloadIssuer is an external token issuer, such as a Kubernetes
// cluster's service-account issuer, whose tokens an app's federated
// credential trusts. Real Entra reads the issuer's keys from its OpenID
// metadata; this server knows them.
type WorkloadIssuer struct {
	// URL is the issuer (iss) of its tokens.
	URL string
	key *Key
}

// NewWorkloadIssuer makes an issuer named name, at URL/workload/name.
func (s *Server) NewWorkloadIssuer(name string) *WorkloadIssuer {
	w := &WorkloadIssuer{URL: s.URL + "/workload/" + name, key: s.NewKey()}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.workloads[w.URL] = w
	return w
}

// Token is a token of the issuer for subject, audience
// TokenExchangeAudience, valid for lifetime: what a pod's projected
// service-account token file holds.
func (w *WorkloadIssuer) Token(subject string, lifetime time.Duration) string {
	return w.TokenFor(subject, TokenExchangeAudience, lifetime)
}

// TokenFor is Token with another audience.
func (w *WorkloadIssuer) TokenFor(subject, audience string, lifetime time.Duration) string {
	now := time.Now()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
		"iss": w.URL, "sub": subject, "aud": []string{audience},
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(lifetime).Unix(), "jti": opaque(16),
	})
	tok.Header["kid"] = w.key.ID
	raw, err := tok.SignedString(w.key.priv)
	if err != nil {
		panic("entratest: " + err.Error())
	}
	return raw
}

// assertionApp authenticates a client by its assertion: the app it names,
// or Entra's error.
func (s *Server) assertionApp(t *Tenant, clientID, assertion string) (*App, map[string]any) {
	var claims jwt.MapClaims
	if _, _, err := jwt.NewParser().ParseUnverified(assertion, &claims); err != nil {
		return nil, aadError("invalid_client", "AADSTS50027: JWT token is invalid or malformed.")
	}
	iss, _ := claims["iss"].(string)
	if clientID == "" {
		clientID, _ = claims["sub"].(string)
	}
	app := s.oauth.app(t, clientID)
	switch {
	case app == nil:
		return nil, aadError("unauthorized_client", "AADSTS700016: Application with identifier '"+clientID+"' was not found in the directory '"+t.Domain+"'.")
	case app.Public:
		return nil, aadError("invalid_client", "AADSTS700025: Client is public so neither 'client_assertion' nor 'client_secret' should be presented.")
	case strings.EqualFold(iss, app.ClientID):
		return app, s.certificateAssertion(t, app, assertion)
	}
	return app, s.federatedAssertion(app, assertion, iss)
}

// certificateAssertion checks an assertion the app signed: with one of its
// certificates (x5t or x5t#S256), for this tenant's token endpoint, iss and
// sub the app, within its lifetime, never seen before.
func (s *Server) certificateAssertion(t *Tenant, app *App, assertion string) map[string]any {
	var cert *x509.Certificate
	var claims jwt.MapClaims
	_, err := jwt.ParseWithClaims(assertion, &claims, func(tok *jwt.Token) (any, error) {
		cert = findCertificate(app.Certificates, tok.Header)
		if cert == nil {
			return nil, jwt.ErrTokenUnverifiable
		}
		return cert.PublicKey, nil
	}, jwt.WithValidMethods([]string{"RS256", "PS256"}), jwt.WithExpirationRequired(), jwt.WithIssuedAt(), jwt.WithLeeway(assertionLeeway))
	switch {
	case cert == nil:
		return aadError("invalid_client", "AADSTS700027: The certificate with identifier used to sign the client assertion is not registered on application '"+app.ClientID+"'.")
	case err != nil:
		return assertionError(err)
	}
	aud, _ := claims.GetAudience()
	endpoints := []string{s.URL + "/" + t.ID + "/oauth2/v2.0/token", s.URL + "/" + t.Domain + "/oauth2/v2.0/token",
		s.URL + "/" + t.ID + "/oauth2/token", s.URL + "/" + t.Domain + "/oauth2/token"}
	sub, _ := claims["sub"].(string)
	jti, _ := claims["jti"].(string)
	exp, _ := claims.GetExpirationTime()
	start, _ := claims.GetNotBefore()
	if start == nil {
		start, _ = claims.GetIssuedAt()
	}
	switch {
	case !slices.ContainsFunc(aud, func(a string) bool { return slices.Contains(endpoints, a) }):
		return aadError("invalid_client", "AADSTS700023: Client assertion audience claim does not match the token endpoint of this tenant.")
	case !strings.EqualFold(sub, app.ClientID):
		return aadError("invalid_client", "AADSTS700021: Client assertion subject is not the application's identifier.")
	case start == nil || exp.Sub(start.Time) > maxAssertionLifetime:
		return aadError("invalid_client", "AADSTS700024: Client assertion is not within its valid time range: its lifetime exceeds an hour.")
	case jti == "":
		return aadError("invalid_client", "AADSTS50027: The client assertion has no jti claim.")
	case !s.firstUse(app.ClientID+"|"+jti, exp.Time.Add(assertionLeeway)): // as long as it is accepted
		return aadError("invalid_client", "AADSTS50027: The client assertion was presented before (its jti is replayed).")
	}
	return nil
}

// assertionLeeway is the clock skew allowed on a client assertion's times.
const assertionLeeway = 5 * time.Minute

// assertionError is Entra's answer to an assertion that did not parse,
// verify or fit its times: an issue time in the future, too, so that
// iat and exp far ahead cannot stretch the one-hour lifetime.
func assertionError(err error) map[string]any {
	switch {
	case errors.Is(err, jwt.ErrTokenExpired), errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return aadError("invalid_client", "AADSTS700024: Client assertion is not within its valid time range.")
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return aadError("invalid_client", "AADSTS50027: JWT token is invalid or malformed: the client assertion has no exp claim.")
	}
	return aadError("invalid_client", "AADSTS700027: Client assertion failed signature validation.")
}

// findCertificate is the certificate a JOSE header names by thumbprint.
func findCertificate(certs []*x509.Certificate, header map[string]any) *x509.Certificate {
	x5t, _ := header["x5t"].(string)
	x5t256, _ := header["x5t#S256"].(string)
	for _, c := range certs {
		s1, s256 := sha1.Sum(c.Raw), sha256.Sum256(c.Raw)
		if x5t != "" && thumbprintIs(x5t, s1[:]) || x5t256 != "" && thumbprintIs(x5t256, s256[:]) {
			return c
		}
	}
	return nil
}

// thumbprintIs reports whether a header's thumbprint is sum. RFC 7515
// says base64url, but MSAL writes standard base64 with padding (PS256 and
// x5t#S256 for Entra), and Entra takes both.
func thumbprintIs(header string, sum []byte) bool {
	return header == base64.RawURLEncoding.EncodeToString(sum) || header == base64.StdEncoding.EncodeToString(sum)
}

// federatedAssertion checks an external issuer's token against the app's
// federated credentials: the issuer's signature, lifetime, and a
// credential naming its issuer, subject and audience.
func (s *Server) federatedAssertion(app *App, assertion, iss string) map[string]any {
	s.mu.Lock()
	w := s.workloads[iss]
	s.mu.Unlock()
	if w == nil || !slices.ContainsFunc(app.Federated, func(f FederatedCredential) bool { return f.Issuer == iss }) {
		return aadError("invalid_client", "AADSTS700211: No matching federated identity record found for presented assertion issuer '"+iss+"'.")
	}
	var claims jwt.MapClaims
	_, err := jwt.ParseWithClaims(assertion, &claims, func(*jwt.Token) (any, error) { return w.key.PublicKey(), nil },
		jwt.WithValidMethods([]string{"RS256"}), jwt.WithExpirationRequired(), jwt.WithIssuedAt(), jwt.WithIssuer(iss))
	if err != nil {
		return assertionError(err)
	}
	sub, _ := claims["sub"].(string)
	aud, _ := claims.GetAudience()
	var subjects []FederatedCredential
	for _, f := range app.Federated {
		if f.Issuer == iss && f.Subject == sub {
			subjects = append(subjects, f)
		}
	}
	if len(subjects) == 0 {
		return aadError("invalid_client", "AADSTS700213: No matching federated identity record found for presented assertion subject '"+sub+"'.")
	}
	for _, f := range subjects {
		if slices.ContainsFunc(aud, func(a string) bool { return slices.Contains(f.Audiences, a) }) {
			return nil
		}
	}
	return aadError("invalid_client", "AADSTS700212: No matching federated identity record found for presented assertion audience.")
}

// firstUse records a client assertion's jti until it expires, and reports
// whether it was new.
func (s *Server) firstUse(key string, until time.Time) bool {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, exp := range s.seenAssertions {
		if now.After(exp) {
			delete(s.seenAssertions, k)
		}
	}
	if _, seen := s.seenAssertions[key]; seen {
		return false
	}
	s.seenAssertions[key] = until
	return true
}
