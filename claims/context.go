package claims

import "context"

// contextKey is unexported so that no other package can read or overwrite
// the claims the middleware stored.
type contextKey struct{ name string }

func (k *contextKey) String() string { return "entragate/claims context value " + k.name }

var claimsKey = &contextKey{"claims"}

// contextNode is the context NewContext returns: it holds its own copy of
// the claims, and room for the copy's lists, in one allocation.
type contextNode struct {
	context.Context
	claims  Claims
	strings [inlineStrings]string
	acct    int
}

func (n *contextNode) Value(key any) any {
	if key == claimsKey {
		return &n.claims
	}
	return n.Context.Value(key)
}

func (n *contextNode) String() string { return "entragate/claims context" }

// NewContext returns a copy of ctx that carries a copy of c: changing c
// afterwards changes nothing in the context, and the claims FromContext
// returns are the context's own. A nil c stores no claims.
func NewContext(ctx context.Context, c *Claims) context.Context {
	if c == nil {
		return context.WithValue(ctx, claimsKey, (*Claims)(nil))
	}
	n := &contextNode{Context: ctx}
	c.copyTo(&n.claims, n.strings[:0], &n.acct)
	return n
}

// FromContext returns the claims stored by NewContext, as the middleware does
// for every request it lets through. The boolean is false when ctx carries
// none, for example on a route the middleware does not protect.
//
// The claims belong to the context (to the request, for a request's
// context), not to a cache or to other requests carrying the same token:
// a handler that changes them changes what later readers of the same
// context see, never what another request sees or what the middleware's
// own checks decide. Treat them as read-only all the same.
func FromContext(ctx context.Context) (*Claims, bool) {
	c, ok := ctx.Value(claimsKey).(*Claims)
	return c, ok && c != nil
}
