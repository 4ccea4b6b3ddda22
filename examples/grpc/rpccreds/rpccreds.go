// Package rpccreds gives a daemon or service calling a protected gRPC API
// its access token on every call: per-RPC credentials backed by MSAL for
// Go's client-credentials flow.
package rpccreds

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"
	"google.golang.org/grpc/credentials"
)

// Credentials are gRPC per-RPC credentials that send an app-only access
// token for scopes (the API's .default scope, api://<api-client-id>/.default)
// in the authorization metadata.
//
// MSAL caches the token, and asks Entra for a new one before it expires
// (AcquireTokenByCredential answers from its cache only a token that has
// minutes left), so calls carry a valid token without a fetch each.
//
// The token is a bearer credential: it is sent only over a connection with
// transport security, or to a loopback address (a local test, a sidecar).
type Credentials struct {
	app    confidential.Client
	scopes []string
}

// New returns credentials getting tokens for scopes from app.
func New(app confidential.Client, scopes ...string) *Credentials {
	return &Credentials{app: app, scopes: scopes}
}

// GetRequestMetadata gets the token, from MSAL's cache or from Entra.
func (c *Credentials) GetRequestMetadata(ctx context.Context, uri ...string) (map[string]string, error) {
	if err := transportIsSafe(ctx, uri); err != nil {
		return nil, err
	}
	res, err := c.app.AcquireTokenByCredential(ctx, c.scopes)
	if err != nil {
		return nil, fmt.Errorf("rpccreds: getting a token for %s: %w", strings.Join(c.scopes, " "), err)
	}
	return map[string]string{"authorization": "Bearer " + res.AccessToken}, nil
}

// RequireTransportSecurity is false so that loopback connections without
// TLS may carry the token; GetRequestMetadata refuses every other
// connection without transport security.
func (c *Credentials) RequireTransportSecurity() bool { return false }

// transportIsSafe allows a connection with privacy and integrity, or to a
// loopback host.
func transportIsSafe(ctx context.Context, uri []string) error {
	if ri, ok := credentials.RequestInfoFromContext(ctx); ok && credentials.CheckSecurityLevel(ri.AuthInfo, credentials.PrivacyAndIntegrity) == nil {
		return nil
	}
	if len(uri) > 0 {
		if u, err := url.Parse(uri[0]); err == nil && isLoopback(u.Hostname()) {
			return nil
		}
	}
	return fmt.Errorf("rpccreds: refusing to send a bearer token over a connection without transport security to %v; use TLS (credentials.NewTLS) or a loopback address", uri)
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
