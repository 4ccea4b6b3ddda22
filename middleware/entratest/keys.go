package entratest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	_ "embed"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"sync"
	"time"
)

// keys.pem holds twelve RSA-2048 keys made once with
// `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048`. Servers
// take keys from this pool in order, so creating a tenant costs no key
// generation; only a test that needs more keys than the pool holds pays for
// generating one, and that key is then cached for the rest of the process.
//
// They are test keys, public in this repository: never trust them anywhere.
//
//go:embed keys.pem
var keysPEM []byte

var pool struct {
	sync.Mutex
	keys []*Key
}

// poolKey returns the i-th key of the process-wide pool.
func poolKey(i int) *Key {
	pool.Lock()
	defer pool.Unlock()
	if pool.keys == nil {
		rest := keysPEM
		for {
			var block *pem.Block
			block, rest = pem.Decode(rest)
			if block == nil {
				break
			}
			priv, err := x509.ParsePKCS8PrivateKey(block.Bytes)
			if err != nil {
				panic("entratest: bad embedded key: " + err.Error())
			}
			pool.keys = append(pool.keys, newKey(priv.(*rsa.PrivateKey), len(pool.keys)))
		}
	}
	for len(pool.keys) <= i {
		priv, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic("entratest: generating a key: " + err.Error())
		}
		pool.keys = append(pool.keys, newKey(priv, len(pool.keys)))
	}
	return pool.keys[i]
}

// generateKey makes a key no one else has, for servers started with
// FreshKeys.
func generateKey() *Key {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic("entratest: generating a key: " + err.Error())
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	return newKey(priv, int(serial.Int64()))
}

// Key is a signing key of the fake tenant, with the self-signed certificate
// Entra publishes for each of its keys.
type Key struct {
	// ID is the key ID, as Entra computes it: the base64url SHA-1 thumbprint
	// of the certificate (it is also the x5t value).
	ID   string
	priv *rsa.PrivateKey
	cert []byte
}

func newKey(priv *rsa.PrivateKey, serial int) *Key {
	// Microsoft's signing certificates are self-signed, named after the
	// token service, and valid for years.
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(int64(serial + 1)),
		Subject:               pkix.Name{CommonName: "accounts.accesscontrol.windows.net"},
		NotBefore:             time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:              time.Date(2049, 1, 1, 0, 0, 0, 0, time.UTC),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		panic(fmt.Sprintf("entratest: making a certificate: %v", err))
	}
	sum := sha1.Sum(der)
	return &Key{ID: base64.RawURLEncoding.EncodeToString(sum[:]), priv: priv, cert: der}
}

// PrivateKey returns the key, for tests that sign tokens by hand.
func (k *Key) PrivateKey() *rsa.PrivateKey { return k.priv }

// PublicKey returns the public half.
func (k *Key) PublicKey() *rsa.PublicKey { return &k.priv.PublicKey }

// Certificate returns the DER certificate published in x5c.
func (k *Key) Certificate() []byte { return k.cert }

// jwk renders the key the way Entra's key sets do: kty, use, kid, x5t, n, e,
// x5c, and on v2 endpoints the issuer the key may sign for. No alg.
func (k *Key) jwk(issuer string) map[string]any {
	m := map[string]any{
		"kty": "RSA",
		"use": "sig",
		"kid": k.ID,
		"x5t": k.ID,
		"n":   base64.RawURLEncoding.EncodeToString(k.priv.N.Bytes()),
		"e":   base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.priv.E)).Bytes()),
		"x5c": []string{base64.StdEncoding.EncodeToString(k.cert)},
	}
	if issuer != "" { // SetKeyIssuer may name a blank one
		m["issuer"] = issuer
		m["cloud_instance_name"] = "microsoftonline.com"
	}
	return m
}
