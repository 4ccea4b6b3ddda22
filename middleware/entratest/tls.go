package entratest

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/http"
	"time"
)

// TLS makes the server answer HTTPS, with a certificate generated at start
// for 127.0.0.1, ::1 and localhost, and plain HTTP on the same port. URL is
// then https: OAuth client libraries such as MSAL accept only https
// authorities (trust the certificate with Client or CertPool). PlainURL
// is the same server over http, for a browser on loopback that would
// otherwise meet a certificate it does not know.
func TLS() ServerOption { return func(o *serverOptions) { o.tls = true } }

// Client returns an HTTP client that trusts the server's certificate (any
// client works with a server started without TLS).
func (s *Server) Client() *http.Client {
	if s.cert == nil {
		return &http.Client{}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: s.CertPool(), MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: tr}
}

// CertPool holds the server's certificate, nil without TLS.
func (s *Server) CertPool() *x509.CertPool {
	if s.cert == nil {
		return nil
	}
	pool := x509.NewCertPool()
	pool.AddCert(s.cert)
	return pool
}

// Certificate is the server's TLS certificate, nil without TLS.
func (s *Server) Certificate() *x509.Certificate { return s.cert }

// PlainURL is the server's URL over plain http (the same port as URL).
func (s *Server) PlainURL() string { return "http://" + s.srv.Listener.Addr().String() }

// selfSigned makes a certificate for loopback names, valid for a day.
func selfSigned() (tls.Certificate, *x509.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "entratest fake Entra tenant"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, cert, nil
}

// sniffListener hands out TLS connections for clients that start a TLS
// handshake and plain ones for the others, on one port.
type sniffListener struct {
	net.Listener
	config *tls.Config
}

func (l sniffListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &sniffConn{Conn: c, config: l.config}, nil
}

// sniffConn decides on its first read whether it speaks TLS: a TLS client
// starts with a handshake record (0x16).
type sniffConn struct {
	net.Conn
	config  *tls.Config
	decided bool
	r       *bufio.Reader
	tls     *tls.Conn
}

func (c *sniffConn) decide() {
	if c.decided {
		return
	}
	c.decided = true
	c.r = bufio.NewReader(c.Conn)
	if first, err := c.r.Peek(1); err == nil && first[0] == 0x16 {
		c.tls = tls.Server(&peekedConn{Conn: c.Conn, r: c.r}, c.config)
	}
}

func (c *sniffConn) Read(p []byte) (int, error) {
	c.decide()
	if c.tls != nil {
		return c.tls.Read(p)
	}
	return c.r.Read(p)
}

func (c *sniffConn) Write(p []byte) (int, error) {
	c.decide()
	if c.tls != nil {
		return c.tls.Write(p)
	}
	return c.Conn.Write(p)
}

func (c *sniffConn) Close() error {
	if c.tls != nil {
		return c.tls.Close()
	}
	return c.Conn.Close()
}

// peekedConn reads through the reader that peeked at the first byte.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(p []byte) (int, error) { return c.r.Read(p) }
