package entratest

import (
	"encoding/base64"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// Microsoft Graph's transitive group memberships, as an API in group
// overage reads them: GET /v1.0/users/{id}/transitiveMemberOf/microsoft.graph.group
// (or servicePrincipals/{id}), with an app-only Graph token of the user's
// tenant whose app holds GroupMember.Read.All, Group.Read.All or
// Directory.Read.All, answered page by page ($top, default 100, at most
// 999; @odata.nextLink while more remain).

// graphGroupRoles are the application permissions that may read
// memberships.
var graphGroupRoles = []string{"GroupMember.Read.All", "Group.Read.All", "Directory.Read.All"}

const graphGroupsSuffix = "/transitiveMemberOf/microsoft.graph.group"

func isGraphGroupsPath(p string) bool {
	rest, ok := strings.CutPrefix(p, "/v1.0/")
	if !ok || !strings.HasSuffix(rest, graphGroupsSuffix) {
		return false
	}
	kind, id, ok := strings.Cut(strings.TrimSuffix(rest, graphGroupsSuffix), "/")
	return ok && (kind == "users" || kind == "servicePrincipals") && id != "" && !strings.Contains(id, "/")
}

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
	case !slices.ContainsFunc(graphGroupRoles, func(role string) bool { return slices.Contains(g.app.GraphRoles, role) }):
		writeJSON(w, http.StatusForbidden, graphError("Authorization_RequestDenied", "Insufficient privileges to complete the operation."))
		return
	}
	rest := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/v1.0/"), graphGroupsSuffix)
	kind, id, _ := strings.Cut(rest, "/")
	groups, found := s.memberGroups(g.tenant, kind, strings.ToLower(id))
	if !found {
		writeJSON(w, http.StatusNotFound, graphError("Request_ResourceNotFound", "Resource '"+id+"' does not exist or one of its queried reference-property objects are not present."))
		return
	}
	q := r.URL.Query()
	top := 100
	if v := q.Get("$top"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 999 {
			writeJSON(w, http.StatusBadRequest, graphError("Request_UnsupportedQuery", "Invalid page size specified: '"+v+"'. Must be between 1 and 999 inclusive."))
			return
		}
		top = n
	}
	start := 0
	if tok := q.Get("$skiptoken"); tok != "" {
		b, err := base64.RawURLEncoding.DecodeString(tok)
		n, err2 := strconv.Atoi(strings.TrimPrefix(string(b), "offset:"))
		if err != nil || err2 != nil || n < 0 || n > len(groups) {
			writeJSON(w, http.StatusBadRequest, graphError("Directory_ExpiredPageToken", "The specified page token value has expired and can no longer be included in your request."))
			return
		}
		start = n
	}
	end := min(start+top, len(groups))
	value := make([]map[string]any, 0, end-start)
	for _, id := range groups[start:end] {
		value = append(value, map[string]any{"@odata.type": "#microsoft.graph.group", "id": id})
	}
	body := map[string]any{"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#directoryObjects(id)", "value": value}
	if end < len(groups) {
		next := q
		next.Set("$top", strconv.Itoa(top))
		next.Set("$skiptoken", base64.RawURLEncoding.EncodeToString([]byte("offset:"+strconv.Itoa(end))))
		body["@odata.nextLink"] = s.URL + r.URL.Path + "?" + next.Encode()
	}
	writeJSON(w, http.StatusOK, body)
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
