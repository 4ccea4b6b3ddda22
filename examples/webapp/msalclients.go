package main

import (
	"container/list"
	"sync"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"
)

// msalClients gives each signed-in account an MSAL client of its own when
// MSAL's cache is external (Redis). MSAL for Go v1.10 loads an account's
// partition into its client's one in-memory cache and reads it afterwards
// without holding its lock across both: on one shared client, a request of
// another user replaces the partition in between, and the first request
// finds no account or no token (and the user looked signed out). A client
// per account has no other account's partition to load. With MSAL's own
// memory cache (no Redis) one client holds every account and loads
// nothing: it serves every call.
type msalClients struct {
	build      func() (confidential.Client, error)
	shared     confidential.Client // AuthCodeURL, and every call without an external cache
	perAccount bool

	mu    sync.Mutex
	byID  map[string]*list.Element // of *accountClient
	order *list.List               // most recently used first
}

type accountClient struct {
	id     string
	client confidential.Client
}

// maxAccountClients bounds the clients kept: a client costs a few
// kilobytes and, when new, one request for the authority's metadata.
const maxAccountClients = 1024

func newMSALClients(build func() (confidential.Client, error), perAccount bool) (*msalClients, error) {
	shared, err := build()
	if err != nil {
		return nil, err
	}
	return &msalClients{build: build, shared: shared, perAccount: perAccount, byID: map[string]*list.Element{}, order: list.New()}, nil
}

// forAccount is the client for the account's calls (Account,
// AcquireTokenSilent, RemoveAccount).
func (m *msalClients) forAccount(homeAccountID string) (confidential.Client, error) {
	if !m.perAccount {
		return m.shared, nil
	}
	m.mu.Lock()
	if e, ok := m.byID[homeAccountID]; ok {
		m.order.MoveToFront(e)
		c := e.Value.(*accountClient).client
		m.mu.Unlock()
		return c, nil
	}
	m.mu.Unlock()
	c, err := m.build()
	if err != nil {
		return confidential.Client{}, err
	}
	m.adopt(homeAccountID, c)
	return c, nil
}

// forSignIn is a client for redeeming a sign-in's code: a new one with an
// external cache (it loads no partition, so it must hold no other
// account's tokens when it exports the new account's), which then serves
// the account (adopt).
func (m *msalClients) forSignIn() (confidential.Client, error) {
	if !m.perAccount {
		return m.shared, nil
	}
	return m.build()
}

// adopt makes c the client of the account, the least recently used
// account's client giving way when there are too many.
func (m *msalClients) adopt(homeAccountID string, c confidential.Client) {
	if !m.perAccount {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.byID[homeAccountID]; ok {
		m.order.MoveToFront(e)
		return
	}
	m.byID[homeAccountID] = m.order.PushFront(&accountClient{id: homeAccountID, client: c})
	for m.order.Len() > maxAccountClients {
		oldest := m.order.Back()
		m.order.Remove(oldest)
		delete(m.byID, oldest.Value.(*accountClient).id)
	}
}
