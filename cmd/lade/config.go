package main

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/urfave/cli/v3"
)

// configFlags edit the image config, like docker commit --change and
// buildah config.
var configFlags = []cli.Flag{
	&cli.StringFlag{Name: "config", Usage: "image config JSON `FILE` (OCI image config) to start from"},
	&cli.StringSliceFlag{Name: "env", Usage: "set an environment variable `KEY=VALUE`"},
	&cli.StringFlag{Name: "entrypoint", Usage: "entrypoint as a JSON array or a shell `CMD` (run with /bin/sh -c)"},
	&cli.StringFlag{Name: "cmd", Usage: "default command as a JSON array or a shell `CMD`"},
	&cli.StringFlag{Name: "workdir", Usage: "working `DIR`"},
	&cli.StringFlag{Name: "user", Usage: "`USER`[:GROUP] to run as"},
	&cli.StringSliceFlag{Name: "label", Usage: "set a label `KEY=VALUE`"},
	&cli.StringSliceFlag{Name: "expose", Usage: "expose a `PORT`[/PROTO]"},
	&cli.StringFlag{Name: "author", Usage: "image author `NAME`"},
	&cli.StringFlag{Name: "created-by", Usage: "history created_by of the new layers (default: their paths)"},
	&cli.StringFlag{Name: "history-comment", Usage: "history comment of the new layers"},
}

// configEdits is what the config flags ask for.
type configEdits struct {
	env, labels, expose               []string
	entrypoint, cmd, workdir, user    string
	author, createdBy, historyComment string
	set                               map[string]bool
}

// readConfigEdits collects the config flags of c.
func readConfigEdits(c *cli.Command) configEdits {
	e := configEdits{
		env: c.StringSlice("env"), labels: c.StringSlice("label"), expose: c.StringSlice("expose"),
		entrypoint: c.String("entrypoint"), cmd: c.String("cmd"), workdir: c.String("workdir"),
		user: c.String("user"), author: c.String("author"), createdBy: c.String("created-by"),
		historyComment: c.String("history-comment"), set: map[string]bool{},
	}
	for _, n := range []string{"entrypoint", "cmd", "workdir", "user", "author"} {
		e.set[n] = c.IsSet(n)
	}
	return e
}

// changes reports whether the edits change the image config itself (not
// only the history of new layers).
func (e configEdits) changes() bool {
	if len(e.env) > 0 || len(e.labels) > 0 || len(e.expose) > 0 {
		return true
	}
	for _, set := range e.set {
		if set {
			return true
		}
	}
	return false
}

// loadConfigFile reads and checks an OCI image config file.
func loadConfigFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(b, &probe); err != nil {
		return nil, fmt.Errorf("config %s is not an image config JSON object: %w", path, err)
	}
	return b, nil
}

// apply edits a config JSON (nil for an empty one) and returns the result.
// Unknown fields of the config are kept.
func (e configEdits) apply(raw []byte) ([]byte, error) {
	var m map[string]json.RawMessage
	if raw == nil {
		raw = []byte("{}")
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("image config is not a JSON object: %w", err)
	}
	var ic ocispec.ImageConfig
	if v, ok := m["config"]; ok {
		if err := json.Unmarshal(v, &ic); err != nil {
			return nil, fmt.Errorf("image config \"config\": %w", err)
		}
	}
	if err := e.edit(&ic); err != nil {
		return nil, err
	}
	b, err := json.Marshal(ic)
	if err != nil {
		return nil, err
	}
	m["config"] = b
	if e.set["author"] {
		m["author"], _ = json.Marshal(e.author)
	}
	return json.Marshal(m)
}

// edit applies the edits to an image config's "config" section.
func (e configEdits) edit(ic *ocispec.ImageConfig) error {
	for _, kv := range e.env {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return fmt.Errorf("--env %q: use KEY=VALUE", kv)
		}
		ic.Env = slices.DeleteFunc(ic.Env, func(s string) bool { return strings.HasPrefix(s, k+"=") })
		ic.Env = append(ic.Env, kv)
	}
	for _, kv := range e.labels {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return fmt.Errorf("--label %q: use KEY=VALUE", kv)
		}
		if ic.Labels == nil {
			ic.Labels = map[string]string{}
		}
		ic.Labels[k] = v
	}
	for _, p := range e.expose {
		if !strings.Contains(p, "/") {
			p += "/tcp"
		}
		if ic.ExposedPorts == nil {
			ic.ExposedPorts = map[string]struct{}{}
		}
		ic.ExposedPorts[p] = struct{}{}
	}
	var err error
	if e.set["entrypoint"] {
		if ic.Entrypoint, err = parseCommand("--entrypoint", e.entrypoint); err != nil {
			return err
		}
	}
	if e.set["cmd"] {
		if ic.Cmd, err = parseCommand("--cmd", e.cmd); err != nil {
			return err
		}
	}
	if e.set["workdir"] {
		ic.WorkingDir = e.workdir
	}
	if e.set["user"] {
		ic.User = e.user
	}
	return nil
}

// parseCommand takes a JSON array (exec form) or a string (shell form).
func parseCommand(flag, s string) ([]string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	if strings.HasPrefix(s, "[") {
		var v []string
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			return nil, fmt.Errorf("%s %s: not a JSON array of strings: %w", flag, s, err)
		}
		return v, nil
	}
	return []string{"/bin/sh", "-c", s}, nil
}

// historyEntry is the history entry for a new layer.
func (e configEdits) historyEntry(createdBy string, created time.Time) ocispec.History {
	if e.createdBy != "" {
		createdBy = e.createdBy
	}
	h := ocispec.History{CreatedBy: createdBy, Comment: e.historyComment, Author: e.author}
	if !created.IsZero() {
		h.Created = &created
	}
	return h
}
