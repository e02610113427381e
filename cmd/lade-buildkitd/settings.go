package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/buildkit/cmd/buildkitd/config"
	sessionauth "github.com/moby/buildkit/session/auth"
	"github.com/moby/buildkit/util/appdefaults"
	"github.com/moby/buildkit/util/archutil"
	"github.com/moby/buildkit/util/bklog"
	"github.com/moby/buildkit/util/resolver/limited"
)

// applySystemConfig applies [system]: the platforms cache age, the
// registry concurrency limit and the session auth timeout.
func applySystemConfig(sc *config.SystemConfig) error {
	if sc == nil {
		return nil
	}
	if v := sc.PlatformsCacheMaxAge; v != nil {
		archutil.CacheMaxAge = v.Duration
	}
	if v := sc.MaxRegistryConcurrency; v != nil {
		if *v <= 0 {
			return fmt.Errorf("maxRegistryConcurrency must be greater than zero; set to %d in the configuration file", *v)
		}
		limited.SetMaxConcurrency(int64(*v))
	}
	if v := sc.SessionAuthTimeout; v != nil {
		sessionauth.SessionAuthTimeout = v.Duration
	}
	return nil
}

// loadProvenanceEnv reads the JSON files of the provenance environment
// directory (provenanceEnvDir, default /etc/buildkit/provenance.d) into
// the environment recorded in SLSA provenance, as buildkitd does.
func loadProvenanceEnv(dir string) (map[string]any, error) {
	if dir == "" {
		dir = filepath.Join(appdefaults.ConfigDir, "provenance.d")
	}
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	env := map[string]any{}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(data, &env); err != nil {
			return nil, fmt.Errorf("failed to parse provenance environment %s: %w", filepath.Join(dir, e.Name()), err)
		}
	}
	bklog.L.Debugf("provenance environment from %s: %d keys", dir, len(env))
	return env, nil
}
