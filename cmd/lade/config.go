package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/lade-build/lade/commit"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/urfave/cli/v3"
)

// configFlags edit the image config, like docker commit --change and
// buildah config.
var configFlags = []cli.Flag{
	&cli.StringFlag{Name: "config", Usage: "image config JSON `FILE` (OCI image config) to start from"},
	&cli.StringSliceFlag{Name: "env", Usage: "set an environment variable `KEY=VALUE` (taken as it is; replaces the key in place)"},
	&cli.StringFlag{Name: "entrypoint", Usage: "entrypoint as a JSON array or a shell `CMD` (run with the config's Shell, or /bin/sh -c); as Dockerfile ENTRYPOINT, drops an inherited command unless --cmd is given"},
	&cli.StringFlag{Name: "cmd", Usage: "default command as a JSON array or a shell `CMD` (\"\" removes it)"},
	&cli.StringFlag{Name: "workdir", Usage: "working `DIR` (a relative one is under the base's)"},
	&cli.StringFlag{Name: "user", Usage: "`USER`[:GROUP] to run as"},
	&cli.StringSliceFlag{Name: "label", Usage: "set a label `KEY=VALUE`"},
	&cli.StringSliceFlag{Name: "expose", Usage: "expose a `PORT`[-PORT][/tcp|udp|sctp]"},
	&cli.StringFlag{Name: "author", Usage: "image author `NAME`"},
	&cli.StringFlag{Name: "created-by", Usage: "history created_by of the new layers (default: their paths)"},
	&cli.StringFlag{Name: "history-comment", Usage: "history comment of the new layers"},
}

// configEdits is what the config flags ask for: changes the library
// applies to the config (commit.ApplyChanges, the one config-edit path)
// and the history fields of the new layers.
type configEdits struct {
	list                              []commit.Change
	author, createdBy, historyComment string
}

// readConfigEdits collects the config flags of c as changes, in the order
// that keeps a --cmd given with --entrypoint, and checks each on an empty
// config so a bad flag fails before any work. --env and --label values are
// taken as they are: no quoting rules, no variable expansion.
func readConfigEdits(c *cli.Command) (configEdits, error) {
	e := configEdits{author: c.String("author"), createdBy: c.String("created-by"), historyComment: c.String("history-comment")}
	for _, f := range []struct{ flag, instruction string }{
		{"env", "ENV"}, {"label", "LABEL"}, {"expose", "EXPOSE"}, {"cmd", "CMD"}, {"entrypoint", "ENTRYPOINT"},
		{"workdir", "WORKDIR"}, {"user", "USER"}, {"author", "MAINTAINER"},
	} {
		if !c.IsSet(f.flag) {
			continue
		}
		var ch commit.Change
		var err error
		switch f.flag {
		case "env", "label", "expose":
			ch = commit.Literal(f.instruction, c.StringSlice(f.flag)...)
		case "cmd", "entrypoint":
			ch, err = commandChange(f.instruction, c.String(f.flag))
		default:
			ch = commit.Literal(f.instruction, c.String(f.flag))
		}
		if err == nil {
			_, err = commit.ApplyChanges([]byte("{}"), []commit.Change{ch})
		}
		if err != nil {
			return e, fmt.Errorf("--%s: %w", f.flag, err)
		}
		e.list = append(e.list, ch)
	}
	return e, nil
}

// commandChange makes the change of --cmd or --entrypoint: a JSON array is
// the exec form, other text the shell form (the config's Shell, or
// /bin/sh -c), and an empty value removes the field.
func commandChange(instruction, s string) (commit.Change, error) {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, "[") {
		if s == "" {
			return commit.Literal(instruction), nil
		}
		return commit.Change{Instruction: instruction, Args: s}, nil
	}
	var argv []string
	if err := json.Unmarshal([]byte(s), &argv); err != nil {
		return commit.Change{}, fmt.Errorf("%s is not a JSON array of strings: %w", s, err)
	}
	return commit.Literal(instruction, argv...), nil
}

// changes reports whether the edits change the image config itself (not
// only the history of new layers).
func (e configEdits) changes() bool { return len(e.list) > 0 }

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

// apply applies the edits to a config JSON, keeping every field they do
// not edit.
func (e configEdits) apply(raw []byte) ([]byte, error) {
	return commit.ApplyChanges(raw, e.list)
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
