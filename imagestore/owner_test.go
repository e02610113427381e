package imagestore

import (
	"context"
	"os/exec"
	"strconv"
	"testing"

	"github.com/containerd/containerd/v2/core/leases"
)

// TestPruneOrphanedLease: a lease whose process is gone is reported by
// Check as left behind and deleted by Prune; the current process's is kept.
func TestPruneOrphanedLease(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	dead := ownerLabels()
	dead[labelOwnerPID] = strconv.Itoa(cmd.Process.Pid)
	if _, err := s.leases.Create(ns(ctx), leases.WithID("dead"), leases.WithExpiration(LeaseExpiry), leases.WithLabels(dead)); err != nil {
		t.Fatal(err)
	}
	_, release, err := s.WithLease(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer release(ctx)
	faults, err := s.Check(ctx)
	if err != nil || len(faults) != 2 {
		t.Fatalf("faults %v %v, want two leases", faults, err)
	}
	st, err := s.Prune(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Leases != 1 {
		t.Errorf("pruned %d leases, want the orphaned one", st.Leases)
	}
	ls, _ := s.leases.List(ns(ctx))
	if len(ls) != 1 || ls[0].ID == "dead" {
		t.Errorf("leases left: %+v", ls)
	}
}
