package claims

import "context"

// contextKey is unexported so that no other package can read or overwrite
// the claims the middleware stored.
type contextKey struct{ name string }

func (k *contextKey) String() string { return "entragate/claims context value " + k.name }

var claimsKey = &contextKey{"claims"}

// NewContext returns a copy of ctx that carries c.
func NewContext(ctx context.Context, c *Claims) context.Context {
	return context.WithValue(ctx, claimsKey, c)
}

// FromContext returns the claims stored by NewContext, as the middleware does
// for every request it lets through. The boolean is false when ctx carries
// none, for example on a route the middleware does not protect.
func FromContext(ctx context.Context) (*Claims, bool) {
	c, ok := ctx.Value(claimsKey).(*Claims)
	return c, ok && c != nil
}

// ContextKey returns the key NewContext stores claims under, for code that
// builds its own context node carrying claims among other values (as the
// entragate middleware does, to add one node per request instead of two).
// Storing a value under it gives no more power than NewContext does.
func ContextKey() any { return claimsKey }
