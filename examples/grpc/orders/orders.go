// Package orders is the sample gRPC service, orders.v1.Orders, written
// without generated code: its messages are protobuf's well-known types,
// its service descriptor and client are written out below.
//
//	rpc Get(google.protobuf.StringValue) returns (google.protobuf.Struct)      // an order by ID
//	rpc Delete(google.protobuf.StringValue) returns (google.protobuf.Empty)
//	rpc Watch(google.protobuf.Empty) returns (stream google.protobuf.StringValue) // order IDs as they change
package orders

import (
	"context"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/entragate/entragate/claims"
)

// Full method names, as the guard's rules name them.
const (
	Service      = "/orders.v1.Orders/"
	GetMethod    = Service + "Get"
	DeleteMethod = Service + "Delete"
	WatchMethod  = Service + "Watch"
)

// Server is an in-memory order book.
type Server struct {
	mu     sync.Mutex
	orders map[string]string // ID -> what was ordered
	// Tick is how often Watch sends the order IDs.
	Tick time.Duration
}

// NewServer returns a server holding two orders.
func NewServer() *Server {
	return &Server{orders: map[string]string{"1001": "three keyboards", "1002": "a monitor"}, Tick: time.Second}
}

// Register adds the service to s.
func (srv *Server) Register(s *grpc.Server) { s.RegisterService(&serviceDesc, srv) }

// Get answers an order, and who asked: the claims the guard put in the
// context.
func (srv *Server) Get(ctx context.Context, id *wrapperspb.StringValue) (*structpb.Struct, error) {
	c, _ := claims.FromContext(ctx)
	srv.mu.Lock()
	item, ok := srv.orders[id.GetValue()]
	srv.mu.Unlock()
	if !ok {
		return nil, status.Errorf(codes.NotFound, "no order %q", id.GetValue())
	}
	caller := c.Name
	if c.IsAppOnly() {
		caller = "app " + c.ClientAppID
	}
	return structpb.NewStruct(map[string]any{"id": id.GetValue(), "item": item, "caller": caller})
}

// Delete removes an order.
func (srv *Server) Delete(_ context.Context, id *wrapperspb.StringValue) (*emptypb.Empty, error) {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	delete(srv.orders, id.GetValue())
	return &emptypb.Empty{}, nil
}

// Watch sends the order IDs every Tick, until the caller goes.
func (srv *Server) Watch(_ *emptypb.Empty, stream grpc.ServerStream) error {
	ticker := time.NewTicker(srv.Tick)
	defer ticker.Stop()
	for {
		srv.mu.Lock()
		var ids []string
		for id := range srv.orders {
			ids = append(ids, id)
		}
		srv.mu.Unlock()
		if err := stream.SendMsg(wrapperspb.String(fmt.Sprint(ids))); err != nil {
			return err
		}
		select {
		case <-stream.Context().Done():
			return nil
		case <-ticker.C:
		}
	}
}

type ordersServer interface {
	Get(context.Context, *wrapperspb.StringValue) (*structpb.Struct, error)
	Delete(context.Context, *wrapperspb.StringValue) (*emptypb.Empty, error)
	Watch(*emptypb.Empty, grpc.ServerStream) error
}

// serviceDesc is what protoc would generate.
var serviceDesc = grpc.ServiceDesc{
	ServiceName: "orders.v1.Orders",
	HandlerType: (*ordersServer)(nil),
	Methods: []grpc.MethodDesc{
		{MethodName: "Get", Handler: unary(GetMethod, func(s ordersServer, ctx context.Context, in *wrapperspb.StringValue) (any, error) {
			return s.Get(ctx, in)
		})},
		{MethodName: "Delete", Handler: unary(DeleteMethod, func(s ordersServer, ctx context.Context, in *wrapperspb.StringValue) (any, error) {
			return s.Delete(ctx, in)
		})},
	},
	Streams: []grpc.StreamDesc{{StreamName: "Watch", ServerStreams: true, Handler: func(srv any, stream grpc.ServerStream) error {
		in := new(emptypb.Empty)
		if err := stream.RecvMsg(in); err != nil {
			return err
		}
		return srv.(ordersServer).Watch(in, stream)
	}}},
}

// unary is a method handler that decodes a StringValue and runs the
// interceptors, as generated code does.
func unary(method string, call func(ordersServer, context.Context, *wrapperspb.StringValue) (any, error)) func(any, context.Context, func(any) error, grpc.UnaryServerInterceptor) (any, error) {
	return func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
		in := new(wrapperspb.StringValue)
		if err := dec(in); err != nil {
			return nil, err
		}
		if interceptor == nil {
			return call(srv.(ordersServer), ctx, in)
		}
		info := &grpc.UnaryServerInfo{Server: srv, FullMethod: method}
		return interceptor(ctx, in, info, func(ctx context.Context, req any) (any, error) {
			return call(srv.(ordersServer), ctx, req.(*wrapperspb.StringValue))
		})
	}
}

// Client calls orders.v1.Orders.
type Client struct{ cc grpc.ClientConnInterface }

// NewClient returns a client on cc.
func NewClient(cc grpc.ClientConnInterface) *Client { return &Client{cc: cc} }

// Get asks for an order.
func (c *Client) Get(ctx context.Context, id string, opts ...grpc.CallOption) (*structpb.Struct, error) {
	out := new(structpb.Struct)
	return out, c.cc.Invoke(ctx, GetMethod, wrapperspb.String(id), out, opts...)
}

// Delete removes an order.
func (c *Client) Delete(ctx context.Context, id string, opts ...grpc.CallOption) error {
	return c.cc.Invoke(ctx, DeleteMethod, wrapperspb.String(id), new(emptypb.Empty), opts...)
}

// Watch opens the stream of order IDs; Recv reads them.
func (c *Client) Watch(ctx context.Context, opts ...grpc.CallOption) (*WatchStream, error) {
	stream, err := c.cc.NewStream(ctx, &serviceDesc.Streams[0], WatchMethod, opts...)
	if err != nil {
		return nil, err
	}
	if err := stream.SendMsg(&emptypb.Empty{}); err != nil {
		return nil, err
	}
	return &WatchStream{stream}, stream.CloseSend()
}

// WatchStream is an open Watch.
type WatchStream struct{ grpc.ClientStream }

// Recv reads the next list of order IDs.
func (s *WatchStream) Recv() (string, error) {
	m := new(wrapperspb.StringValue)
	err := s.RecvMsg(m)
	return m.GetValue(), err
}
