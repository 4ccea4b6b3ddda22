package middleware

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/entragate/entragate/claims"
)

// RequireAuth is standard net/http middleware: it lets a request through only
// with a valid Entra access token in its Authorization header, and stores the
// request's own copy of the token's claims in its context
// (claims.FromContext). It works with http.ServeMux, chi's Use, With and
// Group, and any router that takes func(http.Handler) http.Handler.
//
// Refused requests are answered by the ErrorHandler (default WriteError)
// and logged once. Tokens are read only from the Authorization header, never
// from the query string or a form body. The Observer's Decision is called
// once the request's fate is known: after the route guards after
// RequireAuth, which may still refuse it.
func (a *Authenticator) RequireAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := &authContext{Context: r.Context(), a: a}
		d := decision{token: "access"}
		observed := a.s.observer.Decision != nil
		if observed {
			d.start = time.Now()
		}
		raw, e := bearerToken(r.Header["Authorization"]) // the canonical key: Values would canonicalise it again
		var c *claims.Claims
		if e == nil {
			c, e = a.validate(ctx, raw, true, &d)
		}
		if e != nil {
			ctx.refuse(w, r.WithContext(ctx), e, c)
			if observed {
				a.report(ctx, &d, e, time.Now())
			}
			return
		}
		// What the guards after it decide on: the verified claims
		// themselves, which no handler or middleware in between can
		// change, and where their claims challenges send the user.
		ctx.verified, ctx.src = c, d.src
		// The request's own copy of the claims: what a handler does with
		// them never reaches the cache or another request.
		r = r.WithContext(claims.NewContext(ctx, c))
		if !observed {
			next.ServeHTTP(w, r)
			return
		}
		end := time.Now()
		defer func() { a.report(ctx, &d, ctx.refusal, end) }()
		next.ServeHTTP(w, r)
	})
}

// authContext is what RequireAuth adds to a request's context: how the
// route guards after it answer a refusal, and the refusal they made, which
// decides how the request is reported.
type authContext struct {
	context.Context
	a        *Authenticator
	verified *claims.Claims // the token's, not to be changed: the guards read them
	src      *source        // the document that checked the token
	refusal  *Error         // the first refusal, by RequireAuth or a guard
}

type stateKey struct{}

func (c *authContext) Value(key any) any {
	switch key {
	case stateKey{}:
		return c
	case routeKey{}:
		if c.src != nil {
			return c.src
		}
	}
	return c.Context.Value(key)
}

func (c *authContext) String() string { return "entragate.RequireAuth context" }

// refuse logs and answers a refused request, the first refusal of which
// decides the request's decision.
func (c *authContext) refuse(w http.ResponseWriter, r *http.Request, e *Error, cl *claims.Claims) {
	e = c.a.completeChallenge(e, c.src, cl)
	if c.refusal == nil {
		c.refusal = e
	}
	// A guard's refusal comes after the token verified; RequireAuth's own
	// 403s (scopes, roles, guests) too.
	logRefusal(c.a.s.logger, r, e, cl, c.verified != nil || e.Status == http.StatusForbidden)
	c.a.s.errorHandler(w, r, e)
}

// stateFrom returns the RequireAuth node of the request's context, if any.
func stateFrom(r *http.Request) *authContext {
	if r == nil {
		return nil
	}
	st, _ := r.Context().Value(stateKey{}).(*authContext)
	return st
}

// bearerToken extracts the token per RFC 6750 §2.1. The scheme name is
// case-insensitive (RFC 7235 §2.1).
// A token holding a space, tab or comma is refused later, by
// checkOneToken, once the cache has been asked: a cached token holds none.
func bearerToken(values []string) (string, *Error) {
	switch len(values) {
	case 0:
		return "", newError(ErrMissingToken, "this API requires a bearer token", nil)
	case 1:
	default:
		return "", newError(ErrMalformedRequest, "the request has more than one Authorization header", nil)
	}
	v := values[0]
	scheme, token := "", ""
	if len(v) > 7 && v[6] == ' ' && v[7] != ' ' && v[7] != '\t' && v[len(v)-1] != ' ' && v[len(v)-1] != '\t' {
		// The usual "Bearer <token>", read without scanning the token.
		scheme, token = v[:6], v[7:]
	} else {
		v = strings.Trim(v, " \t") // optional white space is SP and HTAB only (RFC 9110 §5.6.3)
		scheme = v
		if i := strings.IndexAny(v, " \t"); i >= 0 {
			scheme, token = v[:i], strings.TrimLeft(v[i:], " \t")
		}
	}
	if scheme == "" {
		return "", newError(ErrMissingToken, "this API requires a bearer token", nil)
	}
	if !strings.EqualFold(scheme, "Bearer") {
		// Another scheme (Basic, Negotiate...): no Bearer credentials at all.
		return "", newError(ErrMissingToken, "this API requires a bearer token", nil)
	}
	if token == "" {
		return "", newError(ErrMalformedRequest, "the bearer token is empty", nil)
	}
	return token, nil
}

// checkOneToken refuses a header value that holds more than one token
// (RFC 6750 §2.1 allows one b64token). Three vectorised scans: a byte-set
// scan would cost more than the rest of a cached request.
func checkOneToken(token string) *Error {
	if strings.IndexByte(token, ' ') >= 0 || strings.IndexByte(token, '\t') >= 0 || strings.IndexByte(token, ',') >= 0 {
		return newError(ErrMalformedRequest, "the Authorization header must hold exactly one bearer token", nil)
	}
	return nil
}

// logRefusal logs a refused request once, with the reason and claims that
// identify the caller. The token itself is never logged. Claims are those
// the token presented, verified or (when validation failed) not.
func logRefusal(logger *slog.Logger, r *http.Request, e *Error, c *claims.Claims, verified bool) {
	level := slog.LevelInfo
	if e.Reason == ErrMissingToken {
		level = slog.LevelDebug
	}
	ctx := r.Context()
	if !logger.Enabled(ctx, level) {
		return
	}
	attrs := []slog.Attr{
		slog.String("reason", e.Reason.Error()),
		slog.Int("status", e.Status),
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
	}
	if e.Err != nil && e.Status != http.StatusForbidden {
		attrs = append(attrs, slog.String("cause", e.Err.Error()))
	}
	if c != nil {
		// Claims of a token refused before its signature was checked are
		// what it claims, not verified facts.
		attrs = append(attrs, slog.Bool("claims_verified", verified), slog.Group("claims",
			slog.String("tid", c.TenantID),
			slog.String("oid", c.ObjectID),
			slog.String("client_app_id", c.ClientAppID),
			slog.Any("aud", c.Audience),
			slog.String("iss", c.Issuer),
			slog.String("ver", c.Version),
		))
	}
	logger.LogAttrs(ctx, level, "entragate: request refused", attrs...)
}
