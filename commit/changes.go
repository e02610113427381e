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

// Change is one edit of an image config: a Dockerfile instruction as
// written (Args), or typed (Literal, Values) for callers that already hold
// the values, such as command-line flags.
type Change struct {
	// Instruction is the upper-case instruction name, e.g. "ENV".
	Instruction string
	// Args is the rest of the line, as written.
	Args string
	// Literal means Values, not Args, are the arguments: taken as they
	// are, without quoting rules or variable expansion (see Literal).
	Literal bool
	// Values are the arguments of a literal change.
	Values []string
}

// Literal returns a typed change whose values are used as they are: ENV and
// LABEL take KEY=VALUE values, EXPOSE ports, VOLUME paths, CMD and
// ENTRYPOINT the exec-form argument list (none removes the field), USER,
// WORKDIR, STOPSIGNAL and ONBUILD one value. MAINTAINER, which ParseChanges
// does not take, sets the image's top-level "author" to its one value.
func Literal(instruction string, values ...string) Change {
	return Change{Instruction: instruction, Literal: true, Values: values}
}

// String renders the change as a Dockerfile line.
func (c Change) String() string {
	if !c.Literal {
		return c.Instruction + " " + c.Args
	}
	parts := []string{c.Instruction}
	for _, v := range c.Values {
		if v == "" || strings.ContainsAny(v, " \t\n\"'\\$") {
			v = strconv.Quote(v)
		}
		parts = append(parts, v)
	}
	return strings.Join(parts, " ")
}

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
	if err := applyChanges(map[string]json.RawMessage{}, out); err != nil {
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
// image config JSON (MAINTAINER to its "author") and returns the new config
// JSON. Fields it does not touch, in "config" and outside, are kept as they
// are; without changes the config is returned unchanged.
func ApplyChanges(imageConfig []byte, changes []Change) ([]byte, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(imageConfig, &top); err != nil || top == nil {
		return nil, fmt.Errorf("image config is not a JSON object: %v", err)
	}
	if len(changes) == 0 {
		return imageConfig, nil
	}
	if err := applyChanges(top, changes); err != nil {
		return nil, err
	}
	return json.Marshal(top)
}

// applyChanges applies changes to the image config top, in place.
func applyChanges(top map[string]json.RawMessage, changes []Change) error {
	rc := &runConfig{raw: map[string]json.RawMessage{}, top: top}
	if v, ok := top["config"]; ok && string(v) != "null" {
		if err := json.Unmarshal(v, &rc.raw); err != nil {
			return fmt.Errorf("image config \"config\" is not an object: %w", err)
		}
	}
	edited := false
	for _, c := range changes {
		if err := rc.apply(c); err != nil {
			return fmt.Errorf("change %q: %w", c.String(), err)
		}
		edited = edited || c.Instruction != "MAINTAINER"
	}
	if !edited {
		return nil
	}
	b, err := json.Marshal(rc.raw)
	if err != nil {
		return fmt.Errorf("encode config: %w", err)
	}
	top["config"] = b
	return nil
}

// args returns the change's arguments split into words: its Values when
// literal, else Args split (and expanded) by lx.
func (c Change) args(lx lexer) ([]string, error) {
	if c.Literal {
		return c.Values, nil
	}
	return lx.words(c.Args)
}

// apply applies one change.
func (rc *runConfig) apply(c Change) error {
	lx := lexer{env: envMap(rc.strings("Env")), expand: true}
	switch c.Instruction {
	case "CMD":
		rc.setCommand("Cmd", c)
		rc.cmdSet = true
	case "ENTRYPOINT":
		rc.setCommand("Entrypoint", c)
		if !rc.cmdSet {
			delete(rc.raw, "Cmd") // as docker: ENTRYPOINT resets an inherited CMD
		}
	case "ENV":
		return rc.env(lx, c)
	case "LABEL":
		return rc.labels(lx, c)
	case "EXPOSE":
		return rc.expose(lx, c)
	case "VOLUME":
		return rc.volume(lx, c)
	case "ONBUILD", "USER", "WORKDIR", "STOPSIGNAL", "MAINTAINER":
		return rc.single(lx, c)
	default:
		return fmt.Errorf("%s is not an instruction commit applies: use one of %s", c.Instruction, strings.Join(Instructions, ", "))
	}
	return nil
}

// single applies an instruction taking one argument.
func (rc *runConfig) single(lx lexer, c Change) error {
	var words []string
	var err error
	switch {
	case c.Literal:
		words = c.Values
	case c.Instruction == "ONBUILD" || c.Instruction == "MAINTAINER":
		words = []string{c.Args} // the rest of the line
	default:
		words, err = lx.words(c.Args)
	}
	if err != nil {
		return err
	}
	if len(words) != 1 {
		return fmt.Errorf("%s takes one argument, got %d", c.Instruction, len(words))
	}
	switch c.Instruction {
	case "ONBUILD":
		return rc.onbuild(words[0])
	case "MAINTAINER":
		b, err := json.Marshal(words[0])
		rc.top["author"] = b
		return err
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
	return nil
}

// setCommand sets field k (Cmd or Entrypoint) from a CMD or ENTRYPOINT
// change; a literal change without values removes it.
func (rc *runConfig) setCommand(k string, c Change) {
	switch {
	case !c.Literal:
		rc.set(k, rc.command(c.Args))
	case len(c.Values) == 0:
		delete(rc.raw, k)
	default:
		rc.set(k, c.Values)
	}
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

// pairs parses KEY=VALUE words, or (not literal) the legacy "KEY
// VALUE..." form.
func pairs(lx lexer, c Change) ([][2]string, error) {
	words, err := c.args(lx)
	if err != nil {
		return nil, err
	}
	if len(words) == 0 {
		return nil, fmt.Errorf("no KEY=VALUE given")
	}
	if !c.Literal && !strings.Contains(words[0], "=") {
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

func (rc *runConfig) env(lx lexer, c Change) error {
	kvs, err := pairs(lx, c)
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

func (rc *runConfig) labels(lx lexer, c Change) error {
	kvs, err := pairs(lx, c)
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

func (rc *runConfig) expose(lx lexer, c Change) error {
	words, err := c.args(lx)
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

func (rc *runConfig) volume(lx lexer, c Change) error {
	var dirs []string
	if c.Literal || !strings.HasPrefix(c.Args, "[") || json.Unmarshal([]byte(c.Args), &dirs) != nil {
		var err error
		if dirs, err = c.args(lx); err != nil {
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
