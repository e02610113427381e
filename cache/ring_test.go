package cache

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestRing: reservations are contiguous, wrap at the end of the ring,
// never overlap space not yet released, and stop waiting when the context
// ends.
func TestRing(t *testing.T) {
	buf := make([]byte, 10)
	r := &ring{buf: buf, freed: make(chan struct{}, 1)}
	ctx := context.Background()
	a, endA, err := r.reserve(ctx, 6)
	if err != nil || len(a) != 6 || &a[0] != &buf[0] {
		t.Fatalf("first reservation: %d bytes, %v", len(a), err)
	}
	// 4 bytes left before the end, 5 wanted: it waits for a's release and
	// wraps to the start.
	got := make(chan []byte)
	go func() {
		b, _, err := r.reserve(ctx, 5)
		if err != nil {
			t.Error(err)
		}
		got <- b
	}()
	select {
	case <-got:
		t.Fatal("reserved over space not released")
	case <-time.After(50 * time.Millisecond):
	}
	r.release(endA)
	b := <-got
	if len(b) != 5 || &b[0] != &buf[0] {
		t.Fatalf("wrapped reservation at %p, want the start %p", &b[0], &buf[0])
	}
	if cap(b) != 5 {
		t.Fatalf("reservation can grow over the next one: cap %d", cap(b))
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := r.reserve(cctx, 8); !errors.Is(err, context.Canceled) {
		t.Fatalf("full ring, cancelled context: %v", err)
	}
}

// TestRingEmptyWraps: on an empty ring a reservation that does not fit
// before the end starts at the beginning at once, even when the unused
// end and the reservation together exceed the ring (it used to wait for
// ever: nothing was left to release).
func TestRingEmptyWraps(t *testing.T) {
	buf := make([]byte, 10)
	r := &ring{buf: buf, freed: make(chan struct{}, 1)}
	_, end, err := r.reserve(context.Background(), 3)
	if err != nil {
		t.Fatal(err)
	}
	r.release(end)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b, _, err := r.reserve(ctx, 8) // 7 bytes before the end: 7+8 > 10
	if err != nil {
		t.Fatalf("8 bytes of an empty 10-byte ring: %v", err)
	}
	if len(b) != 8 || &b[0] != &buf[0] {
		t.Fatalf("reservation of %d bytes at %p, want 8 at the start %p", len(b), &b[0], &buf[0])
	}
}
