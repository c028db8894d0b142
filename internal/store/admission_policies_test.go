package store

import (
	"context"
	"errors"
	"testing"
)

func TestAdmissionPolicies(t *testing.T) {
	ctx := context.Background()
	forEach(t, func(t *testing.T, s *Store) {
		clk := newClock()
		s.now = clk.Now
		list, gen0, err := s.ListAdmissionPolicies(ctx)
		if err != nil || len(list) != 0 {
			t.Fatalf("empty list = %+v, %v", list, err)
		}
		p1, err := s.PutAdmissionPolicy(ctx, "deny-critical", "a: 1\n", "user:alice")
		if err != nil || p1.Version <= gen0 {
			t.Fatalf("put = %+v, %v", p1, err)
		}
		clk.Advance(1e9)
		p2, err := s.PutAdmissionPolicy(ctx, "deny-critical", "a: 2\n", "user:bob")
		if err != nil || p2.Version <= p1.Version {
			t.Fatalf("replace = %+v, %v", p2, err)
		}
		if _, err := s.PutAdmissionPolicy(ctx, "audit", "b: 1\n", ""); err != nil {
			t.Fatal(err)
		}
		list, gen1, err := s.ListAdmissionPolicies(ctx)
		if err != nil || len(list) != 2 {
			t.Fatalf("list = %+v, %v", list, err)
		}
		if list[0].Name != "audit" || list[1].Name != "deny-critical" {
			t.Errorf("order: %q, %q", list[0].Name, list[1].Name)
		}
		d := list[1]
		if d.YAML != "a: 2\n" || d.UpdatedBy != "user:bob" || d.Version != p2.Version || !d.UpdatedAt.Equal(clk.Now()) {
			t.Errorf("replaced document = %+v (clock %v)", d, clk.Now())
		}
		if gen1 <= p2.Version {
			t.Errorf("generation %d after three writes, last document version %d", gen1, p2.Version)
		}
		// A read changes nothing: the ETag is stable.
		if _, again, _ := s.ListAdmissionPolicies(ctx); again != gen1 {
			t.Errorf("generation moved on read: %d -> %d", gen1, again)
		}
		if err := s.DeleteAdmissionPolicy(ctx, "audit"); err != nil {
			t.Fatal(err)
		}
		list, gen2, err := s.ListAdmissionPolicies(ctx)
		if err != nil || len(list) != 1 || gen2 <= gen1 {
			t.Errorf("after delete: %+v gen %d (was %d), %v", list, gen2, gen1, err)
		}
		if err := s.DeleteAdmissionPolicy(ctx, "audit"); !errors.Is(err, ErrNotFound) {
			t.Errorf("delete missing: %v", err)
		}
		if _, gen3, _ := s.ListAdmissionPolicies(ctx); gen3 != gen2 {
			t.Errorf("failed delete moved the generation: %d -> %d", gen2, gen3)
		}
		if _, err := s.PutAdmissionPolicy(ctx, "", "x", ""); !errors.Is(err, ErrInvalid) {
			t.Errorf("empty name: %v", err)
		}
	})
}
