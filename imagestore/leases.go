package imagestore

import (
	"context"
	"fmt"
	"time"

	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/errdefs"
)

// LeaseExpiry is how long a lease from WithLease protects content if its
// release function never runs (a crashed process). Prune deletes expired
// leases.
const LeaseExpiry = 24 * time.Hour

// WithLease creates a temporary lease and returns ctx carrying it: content
// written through Content() with that context survives Prune until release
// is called (or LeaseExpiry passes). release deletes the lease and is
// idempotent; call it with context.WithoutCancel(ctx) so cleanup runs after
// cancellation. Referenced content must be kept by an image (SetImage) before
// release.
func (s *Store) WithLease(ctx context.Context) (context.Context, func(context.Context) error, error) {
	l, err := s.leases.Create(ns(ctx), leases.WithRandomID(), leases.WithExpiration(LeaseExpiry),
		leases.WithLabels(ownerLabels()))
	if err != nil {
		return nil, nil, fmt.Errorf("create lease: %w", err)
	}
	release := func(ctx context.Context) error {
		if err := s.leases.Delete(ns(ctx), l); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("delete lease %s: %w", l.ID, err)
		}
		return nil
	}
	return leases.WithLease(ctx, l.ID), release, nil
}

// deleteExpiredLeases deletes leases whose gc.expire label is in the past or
// whose owning process is gone, and returns how many it deleted.
func (s *Store) deleteExpiredLeases(ctx context.Context) (int, error) {
	ctx = ns(ctx)
	all, err := s.leases.List(ctx)
	if err != nil {
		return 0, fmt.Errorf("list leases: %w", err)
	}
	n := 0
	now := time.Now()
	for _, l := range all {
		exp, err := time.Parse(time.RFC3339, l.Labels[labelGCExpire])
		expired := err == nil && !exp.After(now) // no (valid) expiry: kept, as containerd does
		if _, gone := ownerGone(l); !expired && !gone {
			continue
		}
		if err := s.leases.Delete(ctx, l); err != nil && !errdefs.IsNotFound(err) {
			return n, fmt.Errorf("delete expired lease %s: %w", l.ID, err)
		}
		n++
	}
	return n, nil
}

// labelGCExpire is containerd's lease expiry label (leases.WithExpiration).
const labelGCExpire = "containerd.io/gc.expire"
