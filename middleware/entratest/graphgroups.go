package entratest

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Microsoft Graph's transitive memberships, as an API in group overage
// reads them: GET /v1.0/users/{id}/transitiveMemberOf (or
// servicePrincipals/{id}), with an app-only Graph token of the member's
// tenant whose app holds the permissions Graph's documentation lists
// (User.Read.All or higher for users, Application.Read.All or
// Directory.Read.All for service principals), answered page by page
// ($top, default 100, at most 999; @odata.nextLink while more remain).
// Memberships are groups and, for users, a directory role, as Graph lists
// them; the OData cast /microsoft.graph.group, an advanced query on real
// Graph, keeps the groups.

// memberOfRoles are the application permissions that may read each kind's
// memberships.
var memberOfRoles = map[string][]string{
	"users":             {"User.Read.All", "GroupMember.Read.All", "Group.Read.All", "Directory.Read.All"},
	"servicePrincipals": {"Application.Read.All", "Directory.Read.All"},
}

// graphMemberOf reads a memberships path: its kind, the member's ID, and
// whether it casts to groups.
func graphMemberOf(p string) (kind, id string, groupsOnly, ok bool) {
	rest, found := strings.CutPrefix(p, "/v1.0/")
	if !found {
		return "", "", false, false
	}
	rest, groupsOnly = strings.CutSuffix(rest, "/microsoft.graph.group")
	rest, found = strings.CutSuffix(rest, "/transitiveMemberOf")
	if !found {
		return "", "", false, false
	}
	kind, id, found = strings.Cut(rest, "/")
	if !found || memberOfRoles[kind] == nil || id == "" || strings.Contains(id, "/") {
		return "", "", false, false
	}
	return kind, id, groupsOnly, true
}

func isGraphGroupsPath(p string) bool {
	_, _, _, ok := graphMemberOf(p)
	return ok
}

// directoryRoleMembership is the directory role every user of the fake is
// a member of, as Graph lists roles among memberships.
const directoryRoleMembership = "b1a5e6a8-2d4e-4b7a-9c1f-0d3e5f7a9b11"

func graphError(code, message string) map[string]any {
	return map[string]any{"error": map[string]any{"code": code, "message": message}}
}

// graphGroups answers transitiveMemberOf.
func (s *Server) graphGroups(w http.ResponseWriter, r *http.Request) {
	raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	s.oauth.mu.Lock()
	g, known := s.oauth.graph[raw]
	s.oauth.mu.Unlock()
	switch {
	case !ok || !known || s.oauth.clock().After(g.expires):
		writeJSON(w, http.StatusUnauthorized, graphError("InvalidAuthenticationToken", "Access token validation failure."))
		return
	case g.app == nil:
		// A user's token may read the user's own groups through /me only.
		writeJSON(w, http.StatusForbidden, graphError("Authorization_RequestDenied", "Insufficient privileges to complete the operation."))
		return
	}
	kind, id, groupsOnly, _ := graphMemberOf(r.URL.Path)
	if !slices.ContainsFunc(memberOfRoles[kind], func(role string) bool { return slices.Contains(g.app.GraphRoles, role) }) {
		writeJSON(w, http.StatusForbidden, graphError("Authorization_RequestDenied", "Insufficient privileges to complete the operation."))
		return
	}
	groups, found := s.memberGroups(g.tenant, kind, strings.ToLower(id))
	if !found {
		writeJSON(w, http.StatusNotFound, graphError("Request_ResourceNotFound", "Resource '"+id+"' does not exist or one of its queried reference-property objects are not present."))
		return
	}
	q := r.URL.Query()
	top, start, problem := graphPage(q, len(groups))
	if problem != nil {
		writeJSON(w, http.StatusBadRequest, problem)
		return
	}
	type membership struct{ kind, id string }
	var all []membership
	for _, id := range groups {
		all = append(all, membership{"#microsoft.graph.group", id})
	}
	if kind == "users" && !groupsOnly {
		all = append(all[:len(all)/2], append([]membership{{"#microsoft.graph.directoryRole", directoryRoleMembership}}, all[len(all)/2:]...)...)
	}
	if start > len(all) {
		start = len(all)
	}
	end := min(start+top, len(all))
	value := make([]map[string]any, 0, end-start)
	for _, m := range all[start:end] {
		value = append(value, map[string]any{"@odata.type": m.kind, "id": m.id})
	}
	body := map[string]any{"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#directoryObjects(id)", "value": value}
	if end < len(all) {
		next := q
		next.Set("$top", strconv.Itoa(top))
		next.Set("$skiptoken", base64.RawURLEncoding.EncodeToString([]byte("offset:"+strconv.Itoa(end))))
		body["@odata.nextLink"] = s.URL + r.URL.Path + "?" + next.Encode()
	}
	writeJSON(w, http.StatusOK, body)
}

// graphPage reads Graph's paging parameters: the page size ($top, 100 by
// default, 1 to 999) and where the page starts ($skiptoken, an opaque
// token of an earlier page's nextLink, here an offset into n results).
func graphPage(q url.Values, n int) (top, start int, problem map[string]any) {
	top = 100
	if v := q.Get("$top"); v != "" {
		t, err := strconv.Atoi(v)
		if err != nil || t < 1 || t > 999 {
			return 0, 0, graphError("Request_UnsupportedQuery", "Invalid page size specified: '"+v+"'. Must be between 1 and 999 inclusive.")
		}
		top = t
	}
	if tok := q.Get("$skiptoken"); tok != "" {
		b, err := base64.RawURLEncoding.DecodeString(tok)
		offset, err2 := strconv.Atoi(strings.TrimPrefix(string(b), "offset:"))
		if err != nil || err2 != nil || offset < 0 || offset > n+1 {
			return 0, 0, graphError("Directory_ExpiredPageToken", "The specified page token value has expired and can no longer be included in your request.")
		}
		start = offset
	}
	return top, start, nil
}

// memberGroups is the groups of a user or service principal of t.
func (s *Server) memberGroups(t *Tenant, kind, id string) ([]string, bool) {
	if kind == "users" {
		u, ok := t.user(id)
		return u.Groups, ok
	}
	s.oauth.mu.Lock()
	defer s.oauth.mu.Unlock()
	for key, app := range s.oauth.apps {
		if strings.HasPrefix(key, t.ID+"|") && app.ObjectID == id {
			return app.Groups, true
		}
	}
	return nil, false
}
