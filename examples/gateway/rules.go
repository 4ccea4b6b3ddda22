package main

import (
	"bufio"
	"fmt"
	"io"
	"strings"

	"github.com/entragate/entragate/middleware"
	"github.com/entragate/entragate/middleware/forwardauth"
)

// parseRules reads a rule file: one route per line, "#" comments,
//
//	METHODS  PATH  REQUIREMENT...
//
// METHODS is "*" or a comma-separated list (GET,HEAD); PATH a path prefix
// on segment boundaries; REQUIREMENT "public", "authenticated", or any of
// scope:NAME and role:NAME (one of them suffices, as RequireScopeOrRole)
// and context:ID (an authentication context, which a token must also
// carry: a step-up). The longest matching path wins; a path no line
// covers is refused.
func parseRules(r io.Reader) ([]forwardauth.Route, error) {
	var routes []forwardauth.Route
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if len(fields) < 3 {
			return nil, fmt.Errorf("line %d: want METHODS PATH REQUIREMENT, got %q", n, strings.TrimSpace(line))
		}
		rt, err := parseRoute(fields)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		routes = append(routes, rt)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(routes) == 0 {
		return nil, fmt.Errorf("no routes: every request would be refused")
	}
	return routes, nil
}

func parseRoute(fields []string) (rt forwardauth.Route, err error) {
	defer func() {
		// The rule constructors panic on malformed names: a line's mistake.
		if p := recover(); p != nil {
			err = fmt.Errorf("%v", p)
		}
	}()
	rt.Path = fields[1]
	if fields[0] != "*" {
		rt.Methods = strings.Split(fields[0], ",")
	}
	reqs := fields[2:]
	switch {
	case len(reqs) == 1 && reqs[0] == "public":
		rt.Public = true
		return rt, nil
	case len(reqs) == 1 && reqs[0] == "authenticated":
		rt.Rule = middleware.Authenticated()
		return rt, nil
	}
	var scopes, roles, contexts []string
	for _, req := range reqs {
		kind, name, ok := strings.Cut(req, ":")
		switch {
		case !ok || name == "":
			return rt, fmt.Errorf("requirement %q: want public, authenticated, scope:NAME, role:NAME or context:ID", req)
		case kind == "scope":
			scopes = append(scopes, name)
		case kind == "role":
			roles = append(roles, name)
		case kind == "context":
			contexts = append(contexts, name)
		default:
			return rt, fmt.Errorf("requirement %q: unknown kind %q (scope, role or context)", req, kind)
		}
	}
	rule := middleware.Authenticated()
	if len(scopes)+len(roles) > 0 {
		rule = middleware.ScopeOrRole(scopes, roles)
	}
	if len(contexts) > 0 {
		rule = middleware.All(rule, middleware.AllAuthContexts(contexts...))
	}
	rt.Rule = rule
	return rt, nil
}
