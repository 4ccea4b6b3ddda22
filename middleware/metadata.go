package middleware

import (
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/MicahParks/jwkset"
)

// Response size caps. Entra's metadata documents are about 2 KiB and its key
// sets about 20 KiB; anything far larger is a fault or an attack, and must
// not be read into memory.
const (
	maxMetadataBytes = 256 << 10
	maxKeySetBytes   = 1 << 20
	minRSABits       = 2048
)

// metadataDoc is the part of an OpenID Provider metadata document we use.
type metadataDoc struct {
	Issuer  string `json:"issuer"`
	JWKSURI string `json:"jwks_uri"`
}

// fetchClient returns the client metadata and keys are fetched with. A
// user's client is copied, not changed, with a redirect policy that applies
// our transport rule to every hop before the user's own policy runs.
func fetchClient(user *http.Client) *http.Client {
	if user == nil {
		return &http.Client{
			Transport:     http.DefaultTransport.(*http.Transport).Clone(),
			CheckRedirect: checkRedirect(nil),
		}
	}
	c := *user
	c.CheckRedirect = checkRedirect(user.CheckRedirect)
	return &c
}

// checkRedirect refuses redirects to places we would not fetch from, then
// defers to next (the user's policy, or at most 5 hops).
func checkRedirect(next func(*http.Request, []*http.Request) error) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		if _, err := parseFetchURL(req.URL.String()); err != nil {
			return fmt.Errorf("refusing redirect: %w", err)
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 5 {
			return errors.New("too many redirects")
		}
		return nil
	}
}

// fetchJSON GETs u and decodes at most limit bytes of JSON into v.
func fetchJSON(ctx context.Context, client *http.Client, u string, limit int64, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "entragate")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	// The redirect policy already checked each hop; checking where the
	// answer actually came from also covers a client whose transport
	// follows redirects or rewrites requests on its own.
	if resp.Request != nil && resp.Request.URL != nil {
		if _, err := parseFetchURL(resp.Request.URL.String()); err != nil {
			return fmt.Errorf("GET %s: answered from a refused location: %w", u, err)
		}
	}
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return fmt.Errorf("GET %s: unexpected status %s", u, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	if int64(len(body)) > limit {
		return fmt.Errorf("GET %s: response larger than %d bytes", u, limit)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("GET %s: invalid JSON: %w", u, err)
	}
	return nil
}

// fetchMetadata reads one metadata document and checks what we rely on.
func fetchMetadata(ctx context.Context, client *http.Client, u string) (metadataDoc, error) {
	var doc metadataDoc
	if err := fetchJSON(ctx, client, u, maxMetadataBytes, &doc); err != nil {
		return doc, err
	}
	if doc.Issuer == "" {
		return doc, fmt.Errorf("metadata %s has no issuer", u)
	}
	if iu, err := url.Parse(doc.Issuer); err != nil || iu.Host == "" {
		return doc, fmt.Errorf("metadata %s has an invalid issuer", u)
	}
	if _, err := parseFetchURL(doc.JWKSURI); err != nil {
		return doc, fmt.Errorf("metadata %s: jwks_uri: %w", u, err)
	}
	return doc, nil
}

// signingKey is one usable key from a key set, with Entra's per-key issuer.
type signingKey struct {
	jwk    jwkset.JWK
	issuer string
}

// keyEntry is the part of a JWK we check before handing it to jwkset.
type keyEntry struct {
	Kty    string `json:"kty"`
	Use    string `json:"use"`
	Kid    string `json:"kid"`
	Alg    string `json:"alg"`
	Issuer string `json:"issuer"`
}

// fetchKeySet reads a JWKS and returns its usable RS256 signing keys. Keys
// that are not RSA signing keys of at least 2048 bits, or that fail jwkset's
// validation (x5c certificate and thumbprint must match the key), are
// skipped; the others still count. skipped describes what was left out.
func fetchKeySet(ctx context.Context, client *http.Client, u string) (keys []signingKey, skipped []string, err error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := fetchJSON(ctx, client, u, maxKeySetBytes, &doc); err != nil {
		return nil, nil, err
	}
	for i, raw := range doc.Keys {
		var e keyEntry
		if err := json.Unmarshal(raw, &e); err != nil {
			skipped = append(skipped, fmt.Sprintf("key %d: not a JSON object", i))
			continue
		}
		switch {
		case e.Kty != "RSA":
			skipped = append(skipped, fmt.Sprintf("key %q: kty %q is not RSA", e.Kid, e.Kty))
			continue
		case e.Use != "" && e.Use != "sig":
			skipped = append(skipped, fmt.Sprintf("key %q: use %q is not sig", e.Kid, e.Use))
			continue
		case e.Kid == "":
			skipped = append(skipped, fmt.Sprintf("key %d: no kid", i))
			continue
		case e.Alg != "" && e.Alg != "RS256":
			skipped = append(skipped, fmt.Sprintf("key %q: alg %q is not RS256", e.Kid, e.Alg))
			continue
		}
		jwk, err := parseJWK(raw)
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("key %q: %v", e.Kid, err))
			continue
		}
		pub, ok := jwk.Key().(*rsa.PublicKey)
		if !ok || pub.N.BitLen() < minRSABits {
			skipped = append(skipped, fmt.Sprintf("key %q: not an RSA public key of at least %d bits", e.Kid, minRSABits))
			continue
		}
		issuer := e.Issuer
		if strings.TrimSpace(issuer) == "" {
			issuer = "" // blank counts as absent, as in Microsoft.IdentityModel
		}
		keys = append(keys, signingKey{jwk: jwk, issuer: issuer})
	}
	if len(keys) == 0 {
		return nil, skipped, errors.New("key set " + u + " has no usable RS256 signing key")
	}
	return keys, skipped, nil
}

// parseJWK parses and validates one key with jwkset: the x5c certificate,
// if any, must hold the same key as n and e. Thumbprints (x5t, x5t#S256)
// are set aside first: nothing uses them, and a key whose thumbprint does
// not match its certificate is still the key its n and e say.
func parseJWK(raw json.RawMessage) (jwkset.JWK, error) {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(raw, &members); err != nil {
		return jwkset.JWK{}, err
	}
	delete(members, "x5t")
	delete(members, "x5t#S256")
	stripped, err := json.Marshal(members)
	if err != nil {
		return jwkset.JWK{}, err
	}
	return jwkset.NewJWKFromRawJSON(stripped, jwkset.JWKMarshalOptions{}, jwkset.JWKValidateOptions{})
}
