// Command client calls the sample gRPC service as a daemon: MSAL for Go's
// client credentials, the token sent with every call by rpccreds, over TLS
// (or plain on loopback).
//
//	AZURE_TENANT_ID=<tenant> AZURE_CLIENT_ID=<daemon-id> AZURE_CLIENT_SECRET=<secret> \
//	API_SCOPE=api://<api-client-id>/.default ADDR=orders.example.com:443 go run ./cmd/client
//
// ADDR on loopback (127.0.0.1:50051) is called without TLS; any other
// address with the system's root certificates.
package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/entragate/entragate/examples/grpc/orders"
	"github.com/entragate/entragate/examples/grpc/rpccreds"
	"github.com/entragate/entragate/examples/internal/env"
	entragate "github.com/entragate/entragate/middleware"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		os.Exit(1)
	}
}

func run() error {
	v := env.New("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_AUTHORITY_HOST", "API_SCOPE", "ADDR")
	tenant := v.Required("AZURE_TENANT_ID", "the directory (tenant) ID of the daemon's registration")
	clientID := v.GUID("AZURE_CLIENT_ID", "the application (client) ID of the daemon's registration")
	v.Required("AZURE_CLIENT_ID", "the application (client) ID of the daemon's registration")
	secret := v.Required("AZURE_CLIENT_SECRET", "a client secret of the daemon's registration")
	scope := v.Required("API_SCOPE", "the API's .default scope, api://<api-client-id>/.default")
	host := v.Host("AZURE_AUTHORITY_HOST")
	addr := v.String("ADDR")
	if err := v.Err(); err != nil {
		return err
	}
	if host == "" {
		host = entragate.DefaultAuthorityHost
	}
	if addr == "" {
		addr = "127.0.0.1:50051"
	}
	cred, err := confidential.NewCredFromSecret(secret)
	if err != nil {
		return err
	}
	app, err := confidential.New(host+"/"+tenant, clientID, cred)
	if err != nil {
		return err
	}
	transport := credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12})
	if h, _, err := net.SplitHostPort(addr); err == nil && (h == "localhost" || net.ParseIP(h).IsLoopback()) {
		transport = insecure.NewCredentials()
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(transport), grpc.WithPerRPCCredentials(rpccreds.New(app, scope)))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	order, err := orders.NewClient(conn).Get(ctx, "1001")
	if err != nil {
		st := status.Convert(err)
		return fmt.Errorf("%s: %s", st.Code(), st.Message())
	}
	fmt.Println(order.AsMap())
	return nil
}
