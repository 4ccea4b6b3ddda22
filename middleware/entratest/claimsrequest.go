package entratest

import (
	"encoding/json"
	"slices"
)

// claimsRequest is what an OpenID Connect claims parameter (the claims of
// a claims challenge, passed on by MSAL's WithClaims) asks of access
// tokens, as far as Entra acts on it: Conditional Access authentication
// contexts (acrs), which the user satisfies on a step-up page, and client
// capabilities (xms_cc, MSAL's WithClientCapabilities), which tokens for
// the tenant's API then carry. nbf, the freshness a revoked session asks
// for, every token this server issues has.
type claimsRequest struct {
	raw          string
	contexts     []string // acrs: one of them satisfies the request
	capabilities []string // xms_cc
}

// claimValueRequest is one claim's request: {"essential":true,"value":"c1"}
// or {"values":["c1","c2"]}.
type claimValueRequest struct {
	Essential bool     `json:"essential"`
	Value     *string  `json:"value"`
	Values    []string `json:"values"`
}

func (r claimValueRequest) all() []string {
	if r.Value != nil {
		return []string{*r.Value}
	}
	return r.Values
}

// parseClaimsRequest reads a claims parameter; the problem is Entra's
// answer to one it cannot read.
func parseClaimsRequest(raw string) (claimsRequest, string) {
	out := claimsRequest{raw: raw}
	if raw == "" {
		return out, ""
	}
	var req map[string]map[string]*claimValueRequest
	if err := json.Unmarshal([]byte(raw), &req); err != nil {
		return claimsRequest{}, "AADSTS70011: The provided value for the input parameter 'claims' is not valid JSON: " + err.Error()
	}
	access := req["access_token"]
	if acrs := access["acrs"]; acrs != nil {
		out.contexts = acrs.all()
		if len(out.contexts) == 0 || slices.Contains(out.contexts, "") {
			return claimsRequest{}, "AADSTS70011: The provided value for the input parameter 'claims' is not valid: acrs names no authentication context."
		}
	}
	if cc := access["xms_cc"]; cc != nil {
		out.capabilities = cc.all()
	}
	return out, ""
}

// missing reports whether none of the requested contexts is among those
// satisfied.
func (c claimsRequest) missing(satisfied []string) bool {
	return len(c.contexts) > 0 && !slices.ContainsFunc(c.contexts, func(id string) bool { return slices.Contains(satisfied, id) })
}

// merged is c's request with more's capabilities and contexts added, as a
// token request's claims add to its authorization request's.
func (c claimsRequest) merged(more claimsRequest) claimsRequest {
	out := c
	out.contexts = appendNew(slices.Clone(c.contexts), more.contexts...)
	out.capabilities = appendNew(slices.Clone(c.capabilities), more.capabilities...)
	if more.raw != "" {
		out.raw = more.raw
	}
	return out
}

func appendNew(list []string, more ...string) []string {
	for _, v := range more {
		if !slices.Contains(list, v) {
			list = append(list, v)
		}
	}
	return list
}

// interactionRequired is Entra's answer to a token request whose claims
// need the user (a step-up a refresh token cannot give): the client must
// send the user to the authorize endpoint with the same claims.
func interactionRequired(claims string) map[string]any {
	e := aadError("interaction_required", "AADSTS50076: Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access this resource.")
	e["suberror"] = "basic_action"
	e["claims"] = claims
	return e
}
