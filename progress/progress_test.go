package progress

import (
	"errors"
	"sync"
	"testing"
)

func TestTaskThrottlesAddAndAlwaysSendsDone(t *testing.T) {
	rec := &Recorder{}
	task := Start(rec, "l", "layer", 10_000)
	for range 10_000 {
		task.Add(1)
	}
	task.Done("new", nil)
	task.Done("again", errors.New("ignored")) // idempotent
	task.Add(5)                               // after Done: dropped

	evs := rec.Events()
	if len(evs) > 5 {
		t.Fatalf("10000 Adds sent %d events, want a few", len(evs))
	}
	if evs[0].Started.IsZero() || evs[0].Done() {
		t.Errorf("first event %+v is not a start", evs[0])
	}
	last := evs[len(evs)-1]
	if !last.Done() || last.Current != 10_000 || last.Status != "new" || last.Error != "" {
		t.Errorf("last event %+v, want done new with 10000", last)
	}
	for _, e := range evs[:len(evs)-1] {
		if e.Done() {
			t.Errorf("completed event %+v before the last", e)
		}
	}
}

func TestTaskConcurrentAddsThenDoneArrivesLast(t *testing.T) {
	rec := &Recorder{}
	task := Start(rec, "l", "layer", 0)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 500 {
				task.Add(2)
			}
		})
	}
	wg.Wait()
	task.SetTotal(8000)
	task.Done("", errors.New("disk full"))
	evs := rec.Events()
	last := evs[len(evs)-1]
	if !last.Done() || last.Current != 8000 || last.Total != 8000 || last.Error != "disk full" {
		t.Errorf("last event %+v", last)
	}
}

func TestOneOffAndOrDiscard(t *testing.T) {
	OrDiscard(nil).Write(Event{ID: "x"}) // must not panic
	Start(nil, "x", "x", 0).Done("", nil)
	rec := &Recorder{}
	if OrDiscard(rec) != Writer(rec) {
		t.Error("OrDiscard replaced a non-nil writer")
	}
	OneOff(rec, "cfg", "config", errors.New("bad"))
	evs := rec.Events()
	if len(evs) != 2 || evs[0].Done() || !evs[1].Done() || evs[1].Error != "bad" {
		t.Errorf("OneOff events %+v", evs)
	}
}

func TestMultiForwardsToAll(t *testing.T) {
	tests := []struct {
		name string
		n    int
	}{{"none", 0}, {"one", 1}, {"three", 3}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs := make([]*Recorder, tt.n)
			ws := []Writer{nil}
			for i := range recs {
				recs[i] = &Recorder{}
				ws = append(ws, recs[i])
			}
			m := Multi(ws...)
			ws[len(ws)-1] = nil // later changes to the slice do not matter
			m.Write(Event{ID: "a"})
			m.Write(Event{ID: "b"})
			for i, r := range recs {
				evs := r.Events()
				if len(evs) != 2 || evs[0].ID != "a" || evs[1].ID != "b" {
					t.Errorf("writer %d got %+v", i, evs)
				}
			}
		})
	}
}
