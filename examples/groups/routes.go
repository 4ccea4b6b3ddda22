package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/entragate/entragate/claims"
	"github.com/entragate/entragate/examples/internal/demo"
	entragate "github.com/entragate/entragate/middleware"
	"github.com/entragate/entragate/middleware/entratest"
)

// routes serves the sample: /reports for the group's members, who also
// need the API's read scope; /me/groups for any caller.
func routes(auth *entragate.Authenticator, groups *entragate.Groups, groupID string) http.Handler {
	r := chi.NewRouter()
	r.Get("/healthz", demo.Healthz)
	r.Get("/readyz", demo.Readyz(auth))
	r.Group(func(r chi.Router) {
		r.Use(auth.RequireAuth)
		r.With(entragate.Require(entragate.All(
			entragate.AnyScope(demo.ReadScope),
			groups.Any(groupID),
		))).Get("/reports", reports)
		r.Get("/me/groups", myGroups(groups, groupID))
	})
	return r
}

// reports is what the group's members read.
func reports(w http.ResponseWriter, r *http.Request) {
	c, _ := claims.FromContext(r.Context())
	demo.WriteJSON(w, http.StatusOK, map[string]any{
		"message": fmt.Sprintf("Hello %s, here are the quarterly reports.", demo.CallerOf(c).Name),
		"caller":  demo.CallerOf(c),
	})
}

// myGroups says whether the caller is in the reports group, and where
// that came from: the token's own list, or Graph when the token could not
// hold it.
func myGroups(groups *entragate.Groups, groupID string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, _ := claims.FromContext(r.Context())
		member, err := groups.IsMember(r.Context(), c, groupID)
		var e *entragate.Error
		if errors.As(err, &e) {
			entragate.WriteError(w, r, e)
			return
		}
		source := "token"
		if c.GroupOverage {
			source = "Microsoft Graph (the token said: too many groups to list)"
		}
		demo.WriteJSON(w, http.StatusOK, map[string]any{"source": source, "reports_group": member, "overage": c.GroupOverage, "groups_in_token": len(c.Groups)})
	}
}

// printHelp prints curl commands with tokens of the fake tenant's users.
func (o *offlineTenant) printHelp(w io.Writer, base string) {
	token := func(u entratest.User) string {
		return o.tenant.AccessToken(entratest.ForUser(u), entratest.Scopes(demo.ReadScope))
	}
	lines := []string{
		"entragate groups sample, OFFLINE MODE: a fake Entra tenant (and its Microsoft Graph) on loopback.",
		"  It accepts only tokens minted by this process and listens on loopback only.",
		"  /reports is for members of group " + o.groupID + ". Tokens below are valid for " + entratest.DefaultLifetime.String() + ".",
		"",
		"# Ada is in 450 groups, the group among them: her token lists none (overage); Graph says she is a member (200)",
		`curl -i -H "Authorization: Bearer ` + token(o.ada) + `" ` + base + "/reports",
		"# Grace is in 450 groups, not the group (403)",
		`curl -i -H "Authorization: Bearer ` + token(o.grace) + `" ` + base + "/reports",
		"# Alan is in 2 groups, the group among them: his token lists them, Graph is not asked (200)",
		`curl -i -H "Authorization: Bearer ` + token(o.alan) + `" ` + base + "/reports",
		"# where Ada's groups came from",
		`curl -i -H "Authorization: Bearer ` + token(o.ada) + `" ` + base + "/me/groups",
		"",
	}
	fmt.Fprintln(w, strings.Join(lines, "\n"))
}
