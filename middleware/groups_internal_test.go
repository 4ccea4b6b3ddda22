package middleware

import (
	"context"
	"fmt"
	"testing"

	"github.com/entragate/entragate/claims"
)

type manyGroups []string

func (m manyGroups) MemberGroups(context.Context, GroupMember) ([]string, error) { return m, nil }

// The cache keeps, for each user, the groups the rules name, not all of
// theirs: its size does not grow with how many groups users are in.
func TestGroupCacheKeepsNamedGroupsOnly(t *testing.T) {
	all := make(manyGroups, 5000)
	for i := range all {
		all[i] = fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
	}
	g, err := NewGroups(GroupsConfig{Resolver: all})
	if err != nil {
		t.Fatal(err)
	}
	rule := g.Any(all[4321])
	if err := rule.Check(context.Background(), &claims.Claims{TenantID: "t", ObjectID: "o", Scopes: []string{"s"}, GroupOverage: true}); err != nil {
		t.Fatal(err)
	}
	g.lookups.mu.Lock()
	defer g.lookups.mu.Unlock()
	for _, ans := range g.lookups.answers {
		if n := len(ans.v.ids); n != 1 || cap(ans.v.ids) != 1 {
			t.Errorf("kept %d group IDs (capacity %d) of 5000, want the 1 named", n, cap(ans.v.ids))
		}
	}
}
