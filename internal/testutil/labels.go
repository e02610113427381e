package testutil

import (
	"maps"
	"sync"

	digest "github.com/opencontainers/go-digest"
)

// LabelStore is an in-memory label store for containerd's local content
// store (local.NewLabeledStore), so that tests' stores keep the labels
// blobs are committed with. The zero value is not ready: use NewLabelStore.
type LabelStore struct {
	mu sync.Mutex
	m  map[digest.Digest]map[string]string
}

// NewLabelStore returns an empty LabelStore.
func NewLabelStore() *LabelStore {
	return &LabelStore{m: map[digest.Digest]map[string]string{}}
}

// Get returns a copy of d's labels.
func (l *LabelStore) Get(d digest.Digest) (map[string]string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.m[d]), nil
}

// Set replaces d's labels.
func (l *LabelStore) Set(d digest.Digest, labels map[string]string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.m[d] = maps.Clone(labels)
	return nil
}

// Update merges labels into d's; an empty value deletes a label.
func (l *LabelStore) Update(d digest.Digest, labels map[string]string) (map[string]string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	cur := l.m[d]
	if cur == nil {
		cur = map[string]string{}
	}
	for k, v := range labels {
		if v == "" {
			delete(cur, k)
		} else {
			cur[k] = v
		}
	}
	l.m[d] = cur
	return maps.Clone(cur), nil
}
