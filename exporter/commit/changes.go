package commit

import (
	"encoding/json"
	"fmt"
	"path"
	"strconv"
	"strings"
)

// Instructions lists the Dockerfile instructions a change may use, as
// docker commit --change takes them (HEALTHCHECK excepted).
var Instructions = []string{"CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "ONBUILD", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR"}

// Change is one Dockerfile instruction to apply to an image config.
type Change struct {
	// Instruction is the upper-case instruction name, e.g. "ENV".
	Instruction string
	// Args is the rest of the line, as written.
	Args string
}

// String renders the change as a Dockerfile line.
func (c Change) String() string { return c.Instruction + " " + c.Args }

// ParseChanges parses Dockerfile instructions, one per line (an entry may
// hold several lines); blank lines and # comments are skipped. Every change
// is checked by applying it to an empty config, so a bad change fails here,
// before any work.
func ParseChanges(lines []string) ([]Change, error) {
	var out []Change
	for _, entry := range lines {
		for _, line := range strings.Split(entry, "\n") {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			name, args, _ := strings.Cut(line, " ")
			c := Change{Instruction: strings.ToUpper(name), Args: strings.TrimSpace(args)}
			if !known(c.Instruction) {
				return nil, fmt.Errorf("change %q: %s is not an instruction commit takes: use one of %s", line, name, strings.Join(Instructions, ", "))
			}
			if c.Args == "" {
				return nil, fmt.Errorf("change %q: %s needs arguments", line, c.Instruction)
			}
			out = append(out, c)
		}
	}
	if _, err := applyChanges(map[string]json.RawMessage{}, out); err != nil {
		return nil, err
	}
	return out, nil
}

func known(name string) bool {
	for _, n := range Instructions {
		if n == name {
			return true
		}
	}
	return false
}

// ApplyChanges applies changes, in order, to the "config" object of an
// image config JSON and returns the new config JSON. Fields it does not
// touch, in "config" and outside, are kept as they are.
func ApplyChanges(imageConfig []byte, changes []Change) ([]byte, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(imageConfig, &top); err != nil || top == nil {
		return nil, fmt.Errorf("image config is not a JSON object: %v", err)
	}
	rc := map[string]json.RawMessage{}
	if v, ok := top["config"]; ok && string(v) != "null" {
		if err := json.Unmarshal(v, &rc); err != nil {
			return nil, fmt.Errorf("image config \"config\" is not an object: %w", err)
		}
	}
	rc, err := applyChanges(rc, changes)
	if err != nil {
		return nil, err
	}
	if top["config"], err = json.Marshal(rc); err != nil {
		return nil, err
	}
	return json.Marshal(top)
}

// runConfig is the "config" object of an image config, edited field by
// field so unknown fields survive.
type runConfig struct {
	raw    map[string]json.RawMessage
	cmdSet bool
}

func applyChanges(raw map[string]json.RawMessage, changes []Change) (map[string]json.RawMessage, error) {
	rc := &runConfig{raw: raw}
	for _, c := range changes {
		if err := rc.apply(c); err != nil {
			return nil, fmt.Errorf("change %q: %w", c.String(), err)
		}
	}
	return rc.raw, nil
}

// apply applies one change.
func (rc *runConfig) apply(c Change) error {
	lx := lexer{env: envMap(rc.strings("Env")), expand: true}
	switch c.Instruction {
	case "CMD":
		rc.set("Cmd", rc.command(c.Args))
		rc.cmdSet = true
	case "ENTRYPOINT":
		rc.set("Entrypoint", rc.command(c.Args))
		if !rc.cmdSet {
			delete(rc.raw, "Cmd") // as docker: ENTRYPOINT resets an inherited CMD
		}
	case "ENV":
		return rc.env(lx, c.Args)
	case "LABEL":
		return rc.labels(lx, c.Args)
	case "EXPOSE":
		return rc.expose(lx, c.Args)
	case "VOLUME":
		return rc.volume(lx, c.Args)
	case "ONBUILD":
		return rc.onbuild(c.Args)
	default: // USER, WORKDIR, STOPSIGNAL: one word
		words, err := lx.words(c.Args)
		if err != nil {
			return err
		}
		if len(words) != 1 {
			return fmt.Errorf("%s takes one argument, got %d", c.Instruction, len(words))
		}
		switch c.Instruction {
		case "USER":
			rc.set("User", words[0])
		case "STOPSIGNAL":
			rc.set("StopSignal", words[0])
		case "WORKDIR":
			dir := words[0]
			if !path.IsAbs(dir) {
				dir = path.Join("/", rc.string("WorkingDir"), dir)
			}
			rc.set("WorkingDir", path.Clean(dir))
		}
	}
	return nil
}

// command parses the exec form (a JSON array) or the shell form, run with
// the config's Shell or /bin/sh -c.
func (rc *runConfig) command(args string) []string {
	if strings.HasPrefix(args, "[") {
		var v []string
		if err := json.Unmarshal([]byte(args), &v); err == nil {
			return v
		}
	}
	shell := rc.strings("Shell")
	if len(shell) == 0 {
		shell = []string{"/bin/sh", "-c"}
	}
	return append(shell, args)
}

// pairs parses KEY=VALUE words, or the legacy "KEY VALUE..." form.
func pairs(lx lexer, args string) ([][2]string, error) {
	words, err := lx.words(args)
	if err != nil {
		return nil, err
	}
	if len(words) == 0 {
		return nil, fmt.Errorf("no KEY=VALUE given")
	}
	if !strings.Contains(words[0], "=") {
		if len(words) < 2 {
			return nil, fmt.Errorf("%s has no value: use KEY=VALUE", words[0])
		}
		return [][2]string{{words[0], strings.Join(words[1:], " ")}}, nil
	}
	var out [][2]string
	for _, w := range words {
		k, v, ok := strings.Cut(w, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%q: use KEY=VALUE", w)
		}
		out = append(out, [2]string{k, v})
	}
	return out, nil
}

func (rc *runConfig) env(lx lexer, args string) error {
	kvs, err := pairs(lx, args)
	if err != nil {
		return err
	}
	env := rc.strings("Env")
	for _, kv := range kvs {
		entry := kv[0] + "=" + kv[1]
		replaced := false
		for i, e := range env {
			if k, _, _ := strings.Cut(e, "="); k == kv[0] {
				env[i], replaced = entry, true
			}
		}
		if !replaced {
			env = append(env, entry)
		}
	}
	rc.set("Env", env)
	return nil
}

func (rc *runConfig) labels(lx lexer, args string) error {
	kvs, err := pairs(lx, args)
	if err != nil {
		return err
	}
	labels := map[string]string{}
	rc.get("Labels", &labels)
	for _, kv := range kvs {
		labels[kv[0]] = kv[1]
	}
	rc.set("Labels", labels)
	return nil
}

func (rc *runConfig) expose(lx lexer, args string) error {
	words, err := lx.words(args)
	if err != nil {
		return err
	}
	ports := map[string]struct{}{}
	rc.get("ExposedPorts", &ports)
	for _, w := range words {
		expanded, err := portRange(w)
		if err != nil {
			return err
		}
		for _, p := range expanded {
			ports[p] = struct{}{}
		}
	}
	rc.set("ExposedPorts", ports)
	return nil
}

// portRange expands PORT[-PORT][/PROTO] into "port/proto" entries.
func portRange(w string) ([]string, error) {
	spec, proto, _ := strings.Cut(w, "/")
	proto = strings.ToLower(proto)
	if proto == "" {
		proto = "tcp"
	}
	if proto != "tcp" && proto != "udp" && proto != "sctp" {
		return nil, fmt.Errorf("port %q: protocol must be tcp, udp or sctp", w)
	}
	lo, hi, isRange := strings.Cut(spec, "-")
	if !isRange {
		hi = lo
	}
	a, err1 := strconv.ParseUint(lo, 10, 16)
	b, err2 := strconv.ParseUint(hi, 10, 16)
	if err1 != nil || err2 != nil || a == 0 || b < a {
		return nil, fmt.Errorf("port %q: use PORT[-PORT][/tcp|udp|sctp] with ports 1-65535", w)
	}
	var out []string
	for p := a; p <= b; p++ {
		out = append(out, fmt.Sprintf("%d/%s", p, proto))
	}
	return out, nil
}

func (rc *runConfig) volume(lx lexer, args string) error {
	var dirs []string
	if !strings.HasPrefix(args, "[") || json.Unmarshal([]byte(args), &dirs) != nil {
		var err error
		if dirs, err = lx.words(args); err != nil {
			return err
		}
	}
	vols := map[string]struct{}{}
	rc.get("Volumes", &vols)
	for _, d := range dirs {
		if strings.TrimSpace(d) == "" {
			return fmt.Errorf("VOLUME given an empty path")
		}
		vols[d] = struct{}{}
	}
	rc.set("Volumes", vols)
	return nil
}

func (rc *runConfig) onbuild(args string) error {
	name, rest, _ := strings.Cut(args, " ")
	name = strings.ToUpper(name)
	switch name {
	case "ONBUILD", "FROM", "MAINTAINER":
		return fmt.Errorf("ONBUILD %s is not allowed", name)
	}
	trigger := strings.TrimSpace(name + " " + strings.TrimSpace(rest))
	rc.set("OnBuild", append(rc.strings("OnBuild"), trigger))
	return nil
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
