package middleware

import (
	"errors"
	"net/http"
	"strings"
)

// Reasons a request or token is refused. Every error the package returns for
// a refused token wraps exactly one of them, so errors.Is tells them apart;
// errors.As with *Error gives the HTTP status and the response details.
var (
	// ErrMissingToken: the request carries no Bearer credentials (no
	// Authorization header, or another scheme). 401 without an error code.
	ErrMissingToken = errors.New("no bearer token in the request")
	// ErrMalformedRequest: the Authorization header is not a single, well
	// formed Bearer credential (repeated headers, an empty token). 400.
	ErrMalformedRequest = errors.New("malformed bearer authorization request")

	// The token is refused (401 invalid_token):
	ErrMalformedToken       = errors.New("token is malformed")
	ErrTokenTooLarge        = errors.New("token is too large")
	ErrUnsupportedAlgorithm = errors.New("token signing algorithm is not accepted")
	ErrMissingKeyID         = errors.New("token header has no key ID")
	ErrCriticalHeader       = errors.New("token header lists critical extensions")
	ErrUnknownSigningKey    = errors.New("token is signed with an unknown key")
	ErrInvalidSignature     = errors.New("token signature is invalid")
	ErrTokenExpired         = errors.New("token is expired")
	ErrTokenNotYetValid     = errors.New("token is not valid yet")
	ErrInvalidIssuedAt      = errors.New("token issued-at time is invalid")
	ErrInvalidAudience      = errors.New("token audience is not this API")
	ErrGraphToken           = errors.New("token is for Microsoft Graph, not this API")
	ErrInvalidIssuer        = errors.New("token issuer is not accepted")
	ErrInvalidVersion       = errors.New("token version is not accepted")
	ErrPolicyNotAllowed     = errors.New("token's B2C policy is not accepted")
	ErrTenantNotAllowed     = errors.New("token's tenant is not admitted")
	ErrNotAccessToken       = errors.New("token has neither scopes nor roles")
	ErrIDToken              = errors.New("token is an ID token, not an access token")

	// Refusals of VerifyIDToken (401 invalid_token):
	ErrNotIDToken   = errors.New("token is not an ID token")
	ErrInvalidNonce = errors.New("ID token nonce does not match the sign-in")

	// ErrInsufficientScope: the token is valid but lacks a required scope or
	// role. 403 insufficient_scope.
	ErrInsufficientScope = errors.New("token lacks a required scope or role")
	// ErrGuestUser: the token is valid but its user is a guest of the
	// tenant, and Config.DenyGuestUsers is set. 403 insufficient_scope.
	ErrGuestUser = errors.New("token is a guest user's")
	// ErrInsufficientClaims: the token is valid but lacks what a step-up
	// rule needs: a Conditional Access authentication context (acrs), or
	// an issue time after the one IssuedAfter requires. 401
	// insufficient_claims with Entra's claims challenge (Error.Claims),
	// which a client answers by asking Entra for a new token with those
	// claims. 403 insufficient_scope when no new token can help: an
	// app-only token, a B2C token, or, with
	// APIConfig.ChallengeOnlyCapableClients, a client that did not declare
	// the cp1 capability. IssuedAfter's refusal is then 401 invalid_token
	// instead: any client can get a fresher token.
	ErrInsufficientClaims = errors.New("token lacks claims a step-up rule requires")

	// ErrKeysUnavailable: the signing keys could not be loaded from Entra, so
	// the token cannot be checked either way. 503 with Retry-After; the
	// client should retry, its token may well be fine.
	ErrKeysUnavailable = errors.New("signing keys are unavailable")

	// ErrTenantCheckUnavailable: TenantAdmission.Check failed, so the
	// token's tenant cannot be admitted or refused right now. 503 with
	// Retry-After.
	ErrTenantCheckUnavailable = errors.New("tenant admission check is unavailable")

	// ErrAuthorizationUnavailable: what a rule needs to decide could not
	// be read right now: a user's groups from Microsoft Graph, or the time
	// an IssuedAfter rule asks for. 503 with Retry-After: never a 403 for a
	// user who may well be allowed, never a 200 for one who may not.
	ErrAuthorizationUnavailable = errors.New("authorization data is unavailable")

	// ErrClosed: the Authenticator (or its Provider) was closed. 503 with
	// Retry-After.
	ErrClosed = errors.New("authenticator is closed")
)

// reasonNames are the short names of the reasons, for metrics labels and
// log fields: lower case, stable, bounded.
var reasonNames = map[error]string{
	ErrMissingToken: "missing_token", ErrMalformedRequest: "malformed_request",
	ErrMalformedToken: "malformed_token", ErrTokenTooLarge: "token_too_large",
	ErrUnsupportedAlgorithm: "unsupported_algorithm", ErrMissingKeyID: "missing_key_id",
	ErrCriticalHeader: "critical_header", ErrUnknownSigningKey: "unknown_signing_key",
	ErrInvalidSignature: "invalid_signature", ErrTokenExpired: "token_expired",
	ErrTokenNotYetValid: "token_not_yet_valid", ErrInvalidIssuedAt: "invalid_issued_at",
	ErrInvalidAudience: "invalid_audience", ErrGraphToken: "graph_token",
	ErrInvalidIssuer: "invalid_issuer", ErrInvalidVersion: "invalid_version",
	ErrPolicyNotAllowed: "policy_not_allowed", ErrTenantNotAllowed: "tenant_not_allowed",
	ErrNotAccessToken: "not_access_token", ErrIDToken: "id_token",
	ErrNotIDToken: "not_id_token", ErrInvalidNonce: "invalid_nonce",
	ErrInsufficientScope: "insufficient_scope", ErrGuestUser: "guest_user",
	ErrInsufficientClaims: "insufficient_claims",
	ErrKeysUnavailable:    "keys_unavailable", ErrTenantCheckUnavailable: "tenant_check_unavailable",
	ErrAuthorizationUnavailable: "authorization_unavailable", ErrClosed: "closed",
}

// ReasonName is the short name of a reason (one of the Err* sentinels, or
// an error wrapping one, such as an *Error): "token_expired",
// "insufficient_scope"... It is "" for nil and "other" for any other
// error. The names are stable: use them as metric labels.
func ReasonName(reason error) string {
	if reason == nil {
		return ""
	}
	if name, ok := reasonNames[reason]; ok {
		return name
	}
	var e *Error
	if errors.As(reason, &e) {
		if name, ok := reasonNames[e.Reason]; ok {
			return name
		}
	}
	return "other"
}

// RFC 6750 §3.1 error codes.
const (
	CodeInvalidRequest    = "invalid_request"
	CodeInvalidToken      = "invalid_token"
	CodeInsufficientScope = "insufficient_scope"
	// CodeInsufficientClaims is Entra's extension for a claims challenge
	// (401): the client must get a new token with the claims in the
	// challenge's claims parameter.
	CodeInsufficientClaims = "insufficient_claims"
	// CodeTemporarilyUnavailable is used in the JSON body of 503 answers.
	CodeTemporarilyUnavailable = "temporarily_unavailable"
)

// Error is a refused request or token. It wraps one of the Err* reasons and,
// when there is one, the underlying cause.
//
// Status, Code, Description, Scopes and RetryAfterSeconds are safe to send
// to the remote caller, over HTTP or any other protocol (a gRPC status, a
// websocket close reason): they name the problem without echoing token
// content or internal details. Err, and therefore Error(), may hold
// internal details (URLs, library messages): they are for logs only.
type Error struct {
	// Reason is one of the package's Err* sentinel errors.
	Reason error
	// Status is the HTTP status for the response: 400, 401, 403 or 503.
	Status int
	// Code is the RFC 6750 error code (or Entra's insufficient_claims),
	// empty for ErrMissingToken.
	Code string
	// Description is safe to send to the caller: it names the problem
	// without echoing token content or internal details.
	Description string
	// Scopes lists the scopes that would satisfy the request, for the
	// scope attribute of a 403 answer. It is the error's own copy.
	Scopes []string
	// RetryAfterSeconds is set for 503 answers.
	RetryAfterSeconds int
	// Claims is the claims request of an insufficient_claims answer, as
	// JSON, e.g. {"access_token":{"acrs":{"essential":true,"value":"c1"}}}:
	// what the client passes to MSAL (WithClaims) to get a token that
	// passes. The challenge's claims parameter is its standard base64.
	Claims string
	// AuthorizationURI is the authorization_uri of an insufficient_claims
	// challenge: the authorize endpoint of the API's tenant, or of common
	// for a multi-tenant API, in the API's cloud.
	AuthorizationURI string
	// claimsRealm is the realm of an insufficient_claims challenge: the
	// API's tenant, or "" for a multi-tenant API, as Entra has it.
	claimsRealm string
	// freshness marks IssuedAfter's challenge: where it cannot be sent,
	// the token is stale (401), not short of a permission (403).
	freshness bool
	// Err is the underlying cause, for logs. It is never sent to callers.
	Err error
}

// Error describes the refusal on one line, cause included: for logs.
func (e *Error) Error() string {
	msg := "entragate: "
	switch {
	case e.Description != "":
		msg += e.Description
	case e.Reason != nil:
		msg += e.Reason.Error()
	default:
		msg += "request refused"
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return oneLine(msg)
}

// oneLine joins the lines of a message (errors.Join separates its errors
// with newlines) so that it stays one log line.
func oneLine(s string) string {
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	return strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' }), "; ")
}

// Unwrap makes errors.Is match the reason and the cause.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Reason}
	}
	return []error{e.Reason, e.Err}
}

// statusFor maps a reason to its HTTP status and RFC 6750 code.
func statusFor(reason error) (int, string) {
	switch reason {
	case ErrMissingToken:
		return http.StatusUnauthorized, ""
	case ErrMalformedRequest:
		return http.StatusBadRequest, CodeInvalidRequest
	case ErrInsufficientScope, ErrGuestUser:
		return http.StatusForbidden, CodeInsufficientScope
	case ErrInsufficientClaims:
		return http.StatusUnauthorized, CodeInsufficientClaims
	case ErrKeysUnavailable, ErrTenantCheckUnavailable, ErrAuthorizationUnavailable, ErrClosed:
		return http.StatusServiceUnavailable, CodeTemporarilyUnavailable
	}
	return http.StatusUnauthorized, CodeInvalidToken
}

// newError builds an Error for reason with a caller-safe description.
func newError(reason error, description string, cause error) *Error {
	status, code := statusFor(reason)
	if description == "" {
		description = reason.Error()
	}
	// Sanitised once, so body, header and logs say the same thing.
	return &Error{Reason: reason, Status: status, Code: code, Description: quotable(description), Err: cause}
}
