// Package env reads the samples' configuration from environment variables
// and says what is wrong in terms of those variables: a sample's user sets
// AZURE_CLIENT_ID, not Config.ClientID, and must hear about the variable.
package env

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
)

// Vars reads one sample's variables. It records the first mistake and
// reports it from Err, so that a sample reads its whole configuration,
// then checks once.
type Vars struct {
	known []string
	err   error
}

// New reads the variables named known: the sample's own. Any other AZURE_*
// variable that is set (a typo such as AZURE_TENANTID, or one of another
// sample) is a mistake, except those the Azure tools set for their own use.
func New(known ...string) *Vars {
	v := &Vars{known: known}
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, "AZURE_") || slices.Contains(known, name) || azureToolVariable(name) {
			continue
		}
		if os.Getenv(name) == "" {
			continue
		}
		msg := name + " is set, but this sample does not read it"
		if guess := closest(name, known); guess != "" {
			msg += " (did you mean " + guess + "?)"
		}
		v.fail(errors.New(msg + "; it reads " + strings.Join(known, ", ")))
	}
	return v
}

// azureToolVariable reports whether name is set by Azure tools for
// themselves (the Azure CLI, the Azure Developer CLI), or is one of the
// Azure SDK's credential variables, which a platform may set for every
// process (AKS workload identity injects AZURE_FEDERATED_TOKEN_FILE and
// AZURE_AUTHORITY_HOST): not a mistake in a sample's configuration.
func azureToolVariable(name string) bool {
	for _, prefix := range []string{"AZURE_CORE_", "AZURE_DEFAULTS_", "AZURE_EXTENSION_", "AZURE_DEV_"} {
		if strings.HasPrefix(name, prefix) {
			return true
		}
	}
	switch name {
	case "AZURE_SUBSCRIPTION_ID", "AZURE_RESOURCE_GROUP", "AZURE_LOCATION", "AZURE_ENV_NAME",
		"AZURE_CONFIG_DIR", "AZURE_HTTP_USER_AGENT", "AZURE_PRINCIPAL_ID",
		// The Azure SDK's EnvironmentCredential and WorkloadIdentityCredential.
		"AZURE_FEDERATED_TOKEN_FILE", "AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH",
		"AZURE_CLIENT_CERTIFICATE_PASSWORD", "AZURE_CLIENT_SEND_CERTIFICATE_CHAIN", "AZURE_USERNAME",
		"AZURE_PASSWORD", "AZURE_ADDITIONALLY_ALLOWED_TENANTS", "AZURE_TOKEN_CREDENTIALS",
		"AZURE_REGIONAL_AUTHORITY_NAME", "AZURE_POD_IDENTITY_AUTHORITY_HOST":
		return true
	}
	return false
}

// closest is the known name that name most likely misspells: the same
// letters once underscores and case are set aside, or one edit away.
func closest(name string, known []string) string {
	squash := func(s string) string { return strings.ToUpper(strings.ReplaceAll(s, "_", "")) }
	for _, k := range known {
		if squash(k) == squash(name) || editDistance(k, name) <= 2 {
			return k
		}
	}
	return ""
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

func (v *Vars) fail(err error) {
	if v.err == nil {
		v.err = err
	}
}

func (v *Vars) get(name string) string {
	if !slices.Contains(v.known, name) {
		panic("env: " + name + " is read but not declared in New")
	}
	return strings.TrimSpace(os.Getenv(name))
}

// Err is the first mistake found, nil if none.
func (v *Vars) Err() error { return v.err }

// Any reports whether any of the variables is set.
func (v *Vars) Any(names ...string) bool {
	for _, n := range names {
		if v.get(n) != "" {
			return true
		}
	}
	return false
}

// String is the variable's value, "" when unset.
func (v *Vars) String(name string) string { return v.get(name) }

// Required is the variable's value; unset is a mistake saying why it is
// needed.
func (v *Vars) Required(name, what string) string {
	s := v.get(name)
	if s == "" {
		v.fail(fmt.Errorf("%s is not set: it is %s", name, what))
	}
	return s
}

// Bool is true for "true", false for "false" or unset; anything else is a
// mistake, not a silent false.
func (v *Vars) Bool(name string) bool {
	switch s := v.get(name); s {
	case "true":
		return true
	case "false", "":
		return false
	default:
		v.fail(fmt.Errorf("%s=%q: write true or false", name, s))
		return false
	}
}

var guid = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// IsGUID reports whether s is a GUID.
func IsGUID(s string) bool { return guid.MatchString(s) }

// GUID is the variable's value, which must be a GUID when set.
func (v *Vars) GUID(name, what string) string {
	s := v.get(name)
	if s != "" && !IsGUID(s) {
		v.fail(fmt.Errorf("%s=%q is not a GUID: it is %s", name, s, what))
	}
	return s
}

// GUIDs is a comma-separated list of GUIDs.
func (v *Vars) GUIDs(name string) []string {
	var out []string
	for _, s := range strings.Split(v.get(name), ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if !IsGUID(s) {
			v.fail(fmt.Errorf("%s: %q is not a tenant ID (GUID)", name, s))
		}
		out = append(out, s)
	}
	return out
}

// Host is an https URL of a host alone (plain http only on loopback).
func (v *Vars) Host(name string) string {
	s := strings.TrimRight(v.get(name), "/")
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	switch {
	case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
		v.fail(fmt.Errorf("%s=%q is not a URL like https://login.microsoftonline.us", name, s))
	case u.Path != "" || u.RawQuery != "":
		v.fail(fmt.Errorf("%s=%q must be a scheme and host only, like https://login.microsoftonline.us", name, s))
	}
	return s
}

// Fields is a space-separated list.
func (v *Vars) Fields(name string) []string { return strings.Fields(v.get(name)) }

// OfflineAddr is where a sample in offline mode listens: ADDR, which must
// be a loopback address, or def. An offline sample trusts a fake tenant
// whose tokens anyone on the machine can ask it for; it must not be
// reachable from the network.
func OfflineAddr(addr, def string) (string, error) {
	if addr == "" {
		return def, nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("ADDR %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return "", fmt.Errorf("ADDR %q is not a loopback address: offline mode (no AZURE_TENANT_ID and AZURE_CLIENT_ID) trusts a fake tenant, "+
			"so it listens on loopback only; set AZURE_TENANT_ID and AZURE_CLIENT_ID to use a real tenant, or ADDR=%s", addr, def)
	}
	return addr, nil
}

// microsoftHosts are the authority hosts of Microsoft's clouds, which MSAL
// may check with instance discovery.
var microsoftHosts = []string{
	"https://login.microsoftonline.com", "https://login.microsoft.com", "https://login.windows.net", "https://sts.windows.net",
	"https://login.microsoftonline.us", "https://login.chinacloudapi.cn", "https://login.partner.microsoftonline.cn",
}

// InstanceDiscovery reports whether MSAL should check the authority host
// with Microsoft's instance discovery: for Microsoft's clouds, not for a
// host Microsoft does not know (a development tenant), where the check
// would fail.
func InstanceDiscovery(host string) bool {
	return slices.Contains(microsoftHosts, strings.TrimSuffix(strings.ToLower(host), "/"))
}
