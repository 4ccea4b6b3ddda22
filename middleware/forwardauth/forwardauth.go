// Package forwardauth is entragate as a gateway's authentication service:
// nginx auth_request, Traefik ForwardAuth, Caddy forward_auth and Envoy
// ext_authz (HTTP) send it each original request's Authorization header,
// method and path; it answers 200 with the caller's identity in headers the
// gateway copies upstream, so that services in any language behind the
// gateway never parse a JWT, or the refusal RequireAuth would send.
//
//	h, err := forwardauth.New(forwardauth.Config{
//		Authenticator: auth,
//		Gateway:       forwardauth.Nginx,
//		TrustedNetworks: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
//		Routes: []forwardauth.Route{
//			{Path: "/healthz", Public: true},
//			{Path: "/api/orders", Methods: []string{"GET", "HEAD"}, Rule: middleware.AnyScope("Orders.Read")},
//			{Path: "/api", Rule: middleware.Authenticated()},
//		},
//	})
//
// What it trusts: the original method and path come only from the
// configured gateway's own headers (X-Original-Method and X-Original-URI,
// which the nginx configuration sets; X-Forwarded-Method and
// X-Forwarded-Uri for Traefik and Caddy; the check request itself for
// Envoy), never from another gateway's, which a client could send; and
// only from a request of a trusted gateway (TrustedNetworks, SharedSecret
// or both), so that a client reaching the service directly cannot have it
// judge a path of its choosing. Paths are judged the way an upstream could
// read them: percent-decoded, with anything two servers could read
// differently refused (empty segments, encoded slashes and question marks,
// backslashes, dot segments, a #, semicolons, double encoding, segments
// ending in a dot or a space, characters NFKC or Windows' best fit turn
// into ASCII, control characters); protected routes match without regard
// to case (the characters some servers fold to ASCII letters included),
// and a path that merely starts with a protected route's must pass it
// too; public ones match only their path and its subpaths, as written. A
// method is judged as written and in upper case. A request that carries an identity header itself (in any
// case, with underscores for dashes too) or a header some servers read as
// the path (X-Original-URL, X-Rewrite-URL) is refused; one with a method
// override header (X-HTTP-Method-Override, X-HTTP-Method,
// X-Method-Override), or with _method in its query, must pass the routes
// of every method it names too.
package forwardauth

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"

	"github.com/entragate/entragate/claims"
	"github.com/entragate/entragate/middleware"
)

// Gateway says which gateway calls the service, and so where the original
// method and path are read.
type Gateway int

const (
	// Nginx: auth_request, with X-Original-Method and X-Original-URI set
	// by the configuration (proxy_set_header ... $request_method and
	// $request_uri).
	Nginx Gateway = iota + 1
	// Traefik: ForwardAuth's X-Forwarded-Method and X-Forwarded-Uri.
	Traefik
	// Caddy: forward_auth's X-Forwarded-Method and X-Forwarded-Uri.
	Caddy
	// Envoy: ext_authz in HTTP mode sends the original method and path
	// themselves, the path behind Config.EnvoyPathPrefix.
	Envoy
)

func (g Gateway) String() string {
	switch g {
	case Nginx:
		return "nginx"
	case Traefik:
		return "Traefik"
	case Caddy:
		return "Caddy"
	case Envoy:
		return "Envoy"
	}
	return fmt.Sprintf("Gateway(%d)", int(g))
}

// Defaults.
const (
	DefaultHeaderPrefix = "X-Entra-"
	DefaultSecretHeader = "X-Entragate-Gateway-Secret"
)

// Config configures a Handler.
type Config struct {
	// Authenticator checks the tokens. Required.
	Authenticator *middleware.Authenticator
	// Gateway is the gateway that calls the handler. Required.
	Gateway Gateway
	// EnvoyPathPrefix is ext_authz's path_prefix, which Envoy puts before
	// the original path; Envoy only.
	EnvoyPathPrefix string

	// Routes say what each original request needs: the route with the
	// longest Path that matches its path and method applies. A path no
	// route matches is refused (403 once its token is valid).
	Routes []Route

	// TrustedNetworks are the addresses the gateway connects from; a
	// request from elsewhere is refused with 403. SharedSecret, when set,
	// must be the value of SecretHeader (default DefaultSecretHeader) of
	// every request, which the gateway adds. At least one of them is
	// required; with both, a request must pass both.
	TrustedNetworks []netip.Prefix
	SharedSecret    string
	SecretHeader    string

	// HeaderPrefix names the identity headers of a 200 answer (default
	// DefaultHeaderPrefix): Object-Id, Tenant-Id, Client-App-Id,
	// Token-Type ("user" or "app"), Scopes and Roles (space-separated),
	// Name and Username (percent-encoded UTF-8); and of a refusal: Error
	// and Error-Description, for a gateway that rewrites the answer (the
	// nginx snippet does).
	HeaderPrefix string

	// Logger receives refusals of untrusted or malformed requests (Warn).
	// Default: none. The Authenticator's Observer sees every decision.
	Logger *slog.Logger
}

// Route is what the requests to a path need.
type Route struct {
	// Path is a path prefix, in plain ASCII, covering itself and its
	// subpaths: a public route's exactly as written ("/docs": /docs and
	// /docs/guide, not /Docs), a protected route's in any case
	// ("/api/orders": /API/Orders/42). The longest route covering a path
	// applies; and a path that merely starts with a longer protected
	// route's (/api/orders.json, /api/ordersx for "/api/orders") must pass
	// that route's Rule too, since upstreams that match prefixes as strings
	// or strip formats would route it there. "/" covers every path. One
	// method may appear in one route per path only.
	Path string
	// Methods the route applies to, in upper case; none: every method.
	// A HEAD request must pass GET's route too (most servers run the GET
	// handler for it) unless the route it is on lists HEAD and not GET and
	// is longer than GET's, or on GET's path as written.
	Methods []string
	// Public lets requests through without a token; Rule must then be
	// zero.
	Public bool
	// Rule is what a token needs on the route. The zero Rule refuses every
	// token.
	Rule middleware.Rule
}

// Handler is the authentication service.
type Handler struct {
	auth       *middleware.Authenticator
	gateway    Gateway
	envoy      string
	routes     []route
	networks   []netip.Prefix
	secret     []byte
	secretName string
	prefix     string
	names      identityNames
	logger     *slog.Logger
}

type route struct {
	Route
	lower string // Path in lower case, for protected routes
}

type identityNames struct {
	objectID, tenantID, clientAppID, tokenType, scopes, roles, name, username, errCode, errDescription string
}

// New checks cfg and returns a Handler.
func New(cfg Config) (*Handler, error) {
	h := &Handler{auth: cfg.Authenticator, gateway: cfg.Gateway, envoy: strings.TrimSuffix(cfg.EnvoyPathPrefix, "/"),
		networks: slices.Clone(cfg.TrustedNetworks), secret: []byte(cfg.SharedSecret),
		secretName: orDefault(cfg.SecretHeader, DefaultSecretHeader), prefix: orDefault(cfg.HeaderPrefix, DefaultHeaderPrefix), logger: cfg.Logger}
	if err := h.check(cfg); err != nil {
		return nil, err
	}
	if h.logger == nil {
		h.logger = slog.New(slog.DiscardHandler)
	}
	p := http.CanonicalHeaderKey(h.prefix + "x")
	p = p[:len(p)-1]
	h.names = identityNames{p + "Object-Id", p + "Tenant-Id", p + "Client-App-Id", p + "Token-Type", p + "Scopes", p + "Roles",
		p + "Name", p + "Username", p + "Error", p + "Error-Description"}
	var err error
	if h.routes, err = checkRoutes(cfg.Routes); err != nil {
		return nil, err
	}
	return h, nil
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func (h *Handler) check(cfg Config) error {
	switch {
	case cfg.Authenticator == nil:
		return errors.New("forwardauth: Config.Authenticator is required")
	case cfg.Gateway < Nginx || cfg.Gateway > Envoy:
		return errors.New("forwardauth: Config.Gateway is required: Nginx, Traefik, Caddy or Envoy")
	case cfg.EnvoyPathPrefix != "" && cfg.Gateway != Envoy:
		return errors.New("forwardauth: EnvoyPathPrefix applies to Envoy only")
	case cfg.EnvoyPathPrefix != "" && !strings.HasPrefix(cfg.EnvoyPathPrefix, "/"):
		return fmt.Errorf("forwardauth: EnvoyPathPrefix %q must start with /", cfg.EnvoyPathPrefix)
	case len(cfg.TrustedNetworks) == 0 && cfg.SharedSecret == "":
		return errors.New("forwardauth: set TrustedNetworks, SharedSecret or both: without them any client reaching the service could have it judge a path of its choosing")
	case cfg.SharedSecret != "" && len(cfg.SharedSecret) < 16:
		return errors.New("forwardauth: SharedSecret is shorter than 16 bytes")
	case !validHeaderName(h.secretName) || !validHeaderName(h.prefix+"X"):
		return errors.New("forwardauth: SecretHeader and HeaderPrefix must be header names")
	case strings.HasPrefix(strings.ToLower(h.secretName), strings.ToLower(h.prefix)):
		return errors.New("forwardauth: SecretHeader must not start with HeaderPrefix")
	}
	for _, n := range cfg.TrustedNetworks {
		if !n.IsValid() {
			return errors.New("forwardauth: TrustedNetworks holds an invalid prefix")
		}
	}
	return nil
}

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// checkRoutes validates the routes, longest Path first.
func checkRoutes(in []Route) ([]route, error) {
	out := make([]route, 0, len(in))
	seen := map[string][][]string{} // the method lists of each folded path
	for _, r := range in {
		p := r.Path
		switch {
		case !strings.HasPrefix(p, "/"):
			return nil, fmt.Errorf("forwardauth: route path %q must start with /", p)
		case p != "/" && strings.HasSuffix(p, "/"):
			return nil, fmt.Errorf("forwardauth: route path %q: write it without the trailing slash (a prefix covers its subpaths)", p)
		case canonicalPath(p) != p || !isASCII(p):
			return nil, fmt.Errorf("forwardauth: route path %q is not a plain ASCII path (no encoded characters, dot segments or repeated slashes)", p)
		case r.Public && !r.Rule.IsZero():
			return nil, fmt.Errorf("forwardauth: route %s is public and has a Rule", p)
		}
		methods := slices.Clone(r.Methods)
		for _, m := range methods {
			if m == "" || strings.ToUpper(m) != m || !validHeaderName(m) {
				return nil, fmt.Errorf("forwardauth: route %s: method %q is not an upper-case method name", p, m)
			}
		}
		slices.Sort(methods)
		key := foldPath(p)
		for _, other := range seen[key] {
			if slices.Equal(other, methods) || len(other) > 0 && slices.ContainsFunc(methods, func(m string) bool { return slices.Contains(other, m) }) {
				return nil, fmt.Errorf("forwardauth: routes for %s list %v and %v: a method may appear in one route per path only", p, other, methods)
			}
		}
		seen[key] = append(seen[key], methods)
		r.Methods = methods
		out = append(out, route{Route: r, lower: foldPath(p)})
	}
	// Longest path first; among equal paths, routes naming methods first.
	slices.SortStableFunc(out, func(a, b route) int {
		if d := len(b.Path) - len(a.Path); d != 0 {
			return d
		}
		return len(b.Methods) - len(a.Methods)
	})
	return out, nil
}

// ServeHTTP answers one check of the gateway.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if !h.trusted(r) {
		h.refuse(w, http.StatusForbidden, "untrusted_caller", "this service answers its gateway only", "a request that is not from the trusted gateway", r)
		return
	}
	method, path, query, problem := h.original(r)
	if problem == "" {
		problem = h.foreignHeaders(r.Header)
	}
	var methods []string
	if problem == "" {
		methods, problem = overrides(r.Header, query, method)
	}
	if problem != "" {
		h.refuse(w, http.StatusForbidden, "invalid_request", problem, problem, r)
		return
	}
	rule, public := h.ruleFor(methods, path)
	if public {
		h.writeIdentity(w, nil) // no caller: every identity header empty
		w.WriteHeader(http.StatusOK)
		return
	}
	ctx, err := h.auth.AuthorizeHeader(r.Context(), r.Header["Authorization"], rule)
	if err != nil {
		h.writeRefusal(w, err)
		return
	}
	c, _ := claims.FromContext(ctx)
	h.writeIdentity(w, c)
	w.WriteHeader(http.StatusOK)
}

// foreignHeaders refuses a request that carries a header under the
// identity prefix itself, however spelled: case aside, with underscores
// for dashes too (nginx drops such names by default; Traefik, Caddy and
// Envoy pass them, and CGI, WSGI and PHP upstreams read X_Entra_Roles as
// X-Entra-Roles); and the headers some servers take as the request's
// path (X-Original-URL, X-Rewrite-URL), which the check never judged.
func (h *Handler) foreignHeaders(hd http.Header) string {
	prefix := headerFold(h.prefix)
	for name := range hd {
		switch n := headerFold(name); {
		case strings.HasPrefix(n, prefix):
			return "the request carries " + name + ", a header only this service sets"
		case n == "x-original-url" || n == "x-rewrite-url":
			return "the request carries " + name + ", which some servers read as the request's path"
		}
	}
	return ""
}

// headerFold is a header name as a CGI-style upstream reads it.
func headerFold(name string) string {
	return strings.ToLower(strings.ReplaceAll(name, "_", "-"))
}

// methodOverrides are the headers frameworks read as the request's method
// (ASP.NET Core's UseHttpMethodOverride, Express's method-override...).
var methodOverrides = []string{"X-Http-Method-Override", "X-Http-Method", "X-Method-Override"}

// overrides is method and every method an override names: a header, or
// _method in the query (Rails, Laravel and Symfony read it there and in a
// form body, which the check cannot see). A request must pass the routes
// of each, as the upstream may act on any.
func overrides(hd http.Header, query, method string) ([]string, string) {
	methods := appendMethod(nil, method)
	add := func(from string, values []string) string {
		for _, v := range values {
			v = strings.TrimSpace(v)
			if v == "" {
				continue
			}
			if validHeaderName(v) {
				methods = appendMethod(methods, v)
				continue
			}
			return "the request's " + from + " is not a method name"
		}
		return ""
	}
	for name, values := range hd {
		if slices.Contains(methodOverrides, http.CanonicalHeaderKey(strings.ReplaceAll(name, "_", "-"))) {
			if problem := add(name+" header", values); problem != "" {
				return nil, problem
			}
		}
	}
	for _, pair := range strings.FieldsFunc(query, func(r rune) bool { return r == '&' || r == ';' }) {
		// Split on & and ; (some servers take either), decoded leniently
		// (%5Fmethod is _method to Node's querystring; a bad escape stays
		// as written), and named as PHP names it: leading spaces
		// dropped, cut at a NUL, ".", " " and "[" made "_".
		k, v, _ := strings.Cut(pair, "=")
		k, v = lenientUnescape(k), lenientUnescape(v)
		name, _, _ := strings.Cut(strings.TrimLeft(k, " "), "\x00")
		if phpName.Replace(name) == "_method" {
			if problem := add(k+" parameter", []string{v}); problem != "" {
				return nil, problem
			}
		}
	}
	return methods, ""
}

// lenientUnescape query-unescapes s as PHP's urldecode and Node's
// querystring do: each valid %XX and + decoded, a bad escape kept as
// written (so that %5Fmethod%00%zz is still _method, cut at the NUL).
func lenientUnescape(s string) string {
	if !strings.ContainsAny(s, "%+") {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '+':
			b = append(b, ' ')
		case s[i] == '%' && i+2 < len(s) && ishex(s[i+1]) && ishex(s[i+2]):
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
		default:
			b = append(b, s[i])
		}
	}
	return string(b)
}

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}

// withGetForHead adds GET to methods holding HEAD, unless the path's
// route for HEAD names HEAD and not GET and is more specific than GET's
// (longer than GET's route and any GET route the path starts with, or on
// GET's path as written): most servers answer HEAD with the GET handler (Go's ServeMux,
// Express, Flask, Rails, Spring), so HEAD must pass GET's route too,
// except where HEAD has a route, and so a handler, of its own.
func (h *Handler) withGetForHead(methods []string, path, lower string) []string {
	if !slices.Contains(methods, http.MethodHead) || slices.Contains(methods, http.MethodGet) {
		return methods
	}
	head, _ := h.match(http.MethodHead, path, lower)
	if head == nil || !slices.Contains(head.Methods, http.MethodHead) || slices.Contains(head.Methods, http.MethodGet) {
		return append(methods, http.MethodGet)
	}
	// HEAD's own route counts only where it is at least as specific as
	// GET's: a HEAD health check on / says nothing of GET /api/orders.
	get, getPrefixes := h.match(http.MethodGet, path, lower)
	for _, p := range getPrefixes {
		if len(p.Path) > len(head.Path) {
			return append(methods, http.MethodGet) // a longer GET route the path starts with
		}
	}
	if get == nil || len(head.Path) > len(get.Path) || head.Path == get.Path {
		return methods
	}
	return append(methods, http.MethodGet) // GET's route is longer, or the same path in another case
}

var phpName = strings.NewReplacer(".", "_", " ", "_", "[", "_")

// appendMethod adds m, and its upper-case form if it differs: methods are
// case-sensitive to some servers (Go's ServeMux sends "get" to a route for
// every method, not to GET's) and not to others (ASP.NET): the request
// must pass the routes of both readings.
func appendMethod(methods []string, m string) []string {
	if u := strings.ToUpper(m); u != m {
		methods = append(methods, u)
	}
	return append(methods, m)
}

// ruleFor is what a request to path needs under every one of methods:
// public only when each method's route is public; the zero Rule when one
// has no route.
func (h *Handler) ruleFor(methods []string, path string) (middleware.Rule, bool) {
	lower := foldPath(path) // once for every route and method matched
	methods = h.withGetForHead(methods, path, lower)
	var rules []middleware.Rule
	for _, m := range methods {
		best, prefixes := h.match(m, path, lower)
		switch {
		case best == nil && len(prefixes) == 0:
			return middleware.Rule{}, false // no route covers the path
		case best != nil && !best.Public:
			prefixes = append(prefixes, best)
		}
		for _, rt := range prefixes {
			if rt.Rule.IsZero() {
				return middleware.Rule{}, false
			}
			rules = append(rules, rt.Rule)
		}
	}
	switch len(rules) {
	case 0:
		return middleware.Rule{}, true
	case 1:
		return rules[0], false
	}
	return middleware.All(rules...), false
}

// trusted applies TrustedNetworks and SharedSecret.
func (h *Handler) trusted(r *http.Request) bool {
	if len(h.networks) > 0 {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		addr, err2 := netip.ParseAddr(host)
		if err != nil || err2 != nil || !slices.ContainsFunc(h.networks, func(p netip.Prefix) bool { return p.Contains(addr.Unmap()) }) {
			return false
		}
	}
	if len(h.secret) > 0 {
		got := r.Header.Values(h.secretName)
		if len(got) != 1 || subtle.ConstantTimeCompare([]byte(got[0]), h.secret) != 1 {
			return false
		}
	}
	return true
}

// original is the method and canonical path of the original request, from
// the configured gateway's headers only.
func (h *Handler) original(r *http.Request) (method, path, query, problem string) {
	var uri string
	switch h.gateway {
	case Nginx:
		method, uri = single(r.Header, "X-Original-Method"), single(r.Header, "X-Original-Uri")
	case Traefik, Caddy:
		method, uri = single(r.Header, "X-Forwarded-Method"), single(r.Header, "X-Forwarded-Uri")
	case Envoy:
		// The request target as sent: Go's URL.EscapedPath re-escapes
		// a path holding characters such as | and, doing so, decodes %2F.
		method, uri = r.Method, r.RequestURI
		target, _, _ := strings.Cut(uri, "?")
		if decoded, err := url.PathUnescape(target); err != nil || decoded != r.URL.Path {
			// A middleware before the handler rewrote the path
			// (http.StripPrefix): what it judged would not be what
			// Envoy sent. Mount it unmodified, with EnvoyPathPrefix.
			return "", "", "", "the check request's path was rewritten before this handler (mount it as it is, and set EnvoyPathPrefix)"
		}
		rest, ok := strings.CutPrefix(uri, h.envoy)
		if !ok || (rest != "" && !strings.HasPrefix(rest, "/") && !strings.HasPrefix(rest, "?")) {
			return "", "", "", "the check request's path does not start with EnvoyPathPrefix"
		}
		uri = rest
	}
	if method == "" || uri == "" {
		return "", "", "", "the " + h.gateway.String() + " gateway sent no original method and URI (see the configuration snippet)"
	}
	if !validHeaderName(method) {
		return "", "", "", "the original method is not a method name"
	}
	// A request target never holds a fragment: a # is refused (below),
	// not cut, since an upstream may take it as part of the path.
	uri, query, _ = strings.Cut(uri, "?")
	if path = canonicalPath(uri); path == "" {
		return "", "", "", "the original path is ambiguous (an empty segment, an encoded slash, backslash or ?, a dot segment, a segment ending in a dot or space, a #, a control character, a character some servers read as ASCII, double or bad percent-encoding)"
	}
	return method, path, query, ""
}

// single is a header's value, "" unless it appears exactly once.
func single(hd http.Header, name string) string {
	if v := hd.Values(name); len(v) == 1 {
		return v[0]
	}
	return ""
}

// match finds the routes of method and path (lower is foldPath(path)): the longest route covering
// it on a segment boundary (a public one exactly as written, a protected
// one in any case), preferring one that names the method; and the longer
// protected routes whose path it merely starts with (/api/payments for
// /api/payments.json or /api/paymentsX), which an upstream matching
// prefixes as strings, or stripping formats, may route it to: the request
// must pass those too.
func (h *Handler) match(method, path, lower string) (best *route, prefixes []*route) {
	var prefixPaths []string // one route per path: the method's, if any
	for i := range h.routes {
		rt := &h.routes[i]
		if len(rt.Methods) > 0 && !slices.Contains(rt.Methods, method) {
			continue
		}
		switch {
		case rt.Public && covers(rt.Path, path) || !rt.Public && covers(rt.lower, lower):
			return rt, prefixes
		case slices.Contains(prefixPaths, rt.lower):
		case rt.Public && strings.HasPrefix(path, rt.Path), !rt.Public && coversProtected(rt.lower, lower):
			// A public route at that path (GET /catalog public for
			// /catalog.json) means that path's rule for the method is
			// none: it is passed by, so are the others at that path.
			prefixPaths = append(prefixPaths, rt.lower)
			if !rt.Public {
				prefixes = append(prefixes, rt)
			}
		}
	}
	return nil, prefixes
}

// writeRefusal answers as RequireAuth does, with the error in headers too.
func (h *Handler) writeRefusal(w http.ResponseWriter, err error) {
	var e *middleware.Error
	if errors.As(err, &e) {
		w.Header().Set(h.names.errCode, orDefault(e.Code, "unauthorized"))
		w.Header().Set(h.names.errDescription, e.Description)
	}
	h.auth.WriteError(w, err)
}

// refuse answers a request the handler cannot judge.
func (h *Handler) refuse(w http.ResponseWriter, status int, code, description, logMsg string, r *http.Request) {
	h.logger.Warn("entragate forwardauth: "+logMsg, slog.String("remote", r.RemoteAddr))
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set(h.names.errCode, code)
	w.Header().Set(h.names.errDescription, description)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": description})
}

// writeIdentity puts the caller's identity in the answer's headers (the
// names are canonical: they are set directly).
func (h *Handler) writeIdentity(w http.ResponseWriter, c *claims.Claims) {
	// Every header, empty when the token has no value for it: a gateway
	// that copies the answer's headers over the request's (Traefik,
	// Caddy, Envoy) then replaces each one a client may have sent.
	hd := w.Header()
	set := func(name, v string) { hd[name] = []string{v} }
	kind := "user"
	switch {
	case c == nil:
		c, kind = &claims.Claims{}, "" // a public path: no caller
	case c.IsAppOnly():
		kind = "app"
	}
	set(h.names.objectID, plain(c.ObjectID))
	set(h.names.tenantID, plain(c.TenantID))
	set(h.names.clientAppID, plain(c.ClientAppID))
	set(h.names.tokenType, kind)
	set(h.names.scopes, plainList(c.Scopes))
	set(h.names.roles, plainList(c.Roles))
	set(h.names.name, url.PathEscape(c.Name))
	set(h.names.username, url.PathEscape(c.Username()))
}

// plain is v when it is printable ASCII without spaces, else "": IDs
// never hold anything else, and a header must not carry what the upstream
// could misread.
func plain(v string) string {
	for i := 0; i < len(v); i++ {
		if v[i] <= 0x20 || v[i] >= 0x7f {
			return ""
		}
	}
	return v
}

func plainList(vs []string) string {
	out := make([]string, 0, len(vs))
	for _, v := range vs {
		if p := plain(v); p != "" && !strings.Contains(p, ",") {
			out = append(out, p)
		}
	}
	return strings.Join(out, " ")
}
