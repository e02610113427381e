package commit

import "encoding/json"

// runConfig is the "config" object of an image config, edited field by
// field so unknown fields survive, and the image config around it.
type runConfig struct {
	raw    map[string]json.RawMessage
	top    map[string]json.RawMessage
	cmdSet bool
}

// get decodes field k into v, leaving v as it is when k is absent or null.
func (rc *runConfig) get(k string, v any) {
	if b, ok := rc.raw[k]; ok && string(b) != "null" {
		_ = json.Unmarshal(b, v)
	}
}

func (rc *runConfig) strings(k string) []string {
	var v []string
	rc.get(k, &v)
	return v
}

func (rc *runConfig) string(k string) string {
	var v string
	rc.get(k, &v)
	return v
}

// set encodes v into field k.
func (rc *runConfig) set(k string, v any) {
	b, _ := json.Marshal(v)
	rc.raw[k] = b
}
