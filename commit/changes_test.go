package commit_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/lade-build/lade/commit"
)

// TestApplyChanges checks each instruction against what docker commit
// --change makes of it.
func TestApplyChanges(t *testing.T) {
	base := `{"architecture":"amd64","config":{"Env":["PATH=/bin","HOME=/root"],"Cmd":["sh"],"WorkingDir":"/srv","Labels":{"old":"1"},"Healthcheck":{"Test":["NONE"]}}}`
	for _, tc := range []struct {
		name    string
		changes []string
		want    string // the resulting "config" object
	}{
		{"cmd exec", []string{`CMD ["/app", "-v"]`}, `"Cmd":["/app","-v"]`},
		{"cmd shell", []string{`cmd echo "hi there"`}, `"Cmd":["/bin/sh","-c","echo \"hi there\""]`},
		{"entrypoint resets cmd", []string{`ENTRYPOINT ["/app"]`}, `"Entrypoint":["/app"]`},
		{"entrypoint keeps a new cmd", []string{`CMD ["x"]`, `ENTRYPOINT ["/app"]`}, `"Cmd":["x"],"Entrypoint":["/app"]`},
		{"env pairs and expansion", []string{`ENV A=1 PATH=/usr/bin:$PATH B="two words" C=${HOME}/x`},
			`"Env":["PATH=/usr/bin:/bin","HOME=/root","A=1","B=two words","C=/root/x"]`},
		{"env uses values from before", []string{`ENV HOME=/h D=$HOME`}, `"Env":["PATH=/bin","HOME=/h","D=/root"]`},
		{"env legacy", []string{`ENV GREETING hello world`}, `"GREETING=hello world"`},
		{"env default", []string{`ENV X=${UNSET:-dflt} Y=${HOME:+set}`}, `"X=dflt","Y=set"`},
		{"label", []string{`LABEL "com.example.k"="v 1" other=x`}, `"Labels":{"com.example.k":"v 1","old":"1","other":"x"}`},
		{"expose", []string{`EXPOSE 80 53/UDP 8000-8001`}, `"ExposedPorts":{"53/udp":{},"80/tcp":{},"8000/tcp":{},"8001/tcp":{}}`},
		{"volume json", []string{`VOLUME ["/data", "/logs"]`}, `"Volumes":{"/data":{},"/logs":{}}`},
		{"volume words", []string{`VOLUME /data /logs`}, `"Volumes":{"/data":{},"/logs":{}}`},
		{"workdir relative", []string{`WORKDIR app`, `WORKDIR ../lib`}, `"WorkingDir":"/srv/lib"`},
		{"workdir absolute expanded", []string{`WORKDIR $HOME/w`}, `"WorkingDir":"/root/w"`},
		{"user", []string{`USER 1000:1000`}, `"User":"1000:1000"`},
		{"stopsignal", []string{`STOPSIGNAL SIGINT`}, `"StopSignal":"SIGINT"`},
		{"onbuild", []string{`ONBUILD run make`}, `"OnBuild":["RUN make"]`},
		{"several per entry", []string{"USER a\n# comment\n\nUSER b"}, `"User":"b"`},
		{"unknown fields kept", []string{`USER x`}, `"Healthcheck":{"Test":["NONE"]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			changes, err := commit.ParseChanges(tc.changes)
			if err != nil {
				t.Fatal(err)
			}
			out, err := commit.ApplyChanges([]byte(base), changes)
			if err != nil {
				t.Fatal(err)
			}
			var top map[string]json.RawMessage
			if err := json.Unmarshal(out, &top); err != nil {
				t.Fatal(err)
			}
			if string(top["architecture"]) != `"amd64"` {
				t.Errorf("top-level fields lost: %s", out)
			}
			if got := string(top["config"]); !strings.Contains(got, tc.want) {
				t.Errorf("config %s\nwant it to contain %s", got, tc.want)
			}
			if tc.name == "entrypoint resets cmd" && strings.Contains(string(top["config"]), `"Cmd"`) {
				t.Errorf("ENTRYPOINT kept the inherited CMD: %s", top["config"])
			}
		})
	}
}

// TestParseChangesErrors checks that bad changes fail with a useful error.
func TestParseChangesErrors(t *testing.T) {
	for _, tc := range []struct{ change, want string }{
		{"RUN make", "RUN is not an instruction commit takes"},
		{"HEALTHCHECK NONE", "HEALTHCHECK is not an instruction"},
		{"MAINTAINER ada", "MAINTAINER is not an instruction commit takes"},
		{"ENV", "ENV needs arguments"},
		{"ENV A", "has no value"},
		{"ENV =x", "use KEY=VALUE"},
		{`ENV A="x`, "unterminated double quote"},
		{"ENV A='x", "unterminated single quote"},
		{"ENV A=${B", "unterminated ${"},
		{"ENV A=${B:?x}", "unsupported modifier"},
		{"EXPOSE 0", "ports 1-65535"},
		{"EXPOSE 80/icmp", "tcp, udp or sctp"},
		{"EXPOSE 90-80", "ports 1-65535"},
		{"USER a b", "takes one argument"},
		{"ONBUILD FROM x", "not allowed"},
	} {
		_, err := commit.ParseChanges([]string{tc.change})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseChanges(%q) = %v, want an error containing %q", tc.change, err, tc.want)
		}
	}
}

// FuzzParseChanges checks that no input panics and that what parses also
// applies to a config.
func FuzzParseChanges(f *testing.F) {
	for _, s := range []string{`ENV A=$B "c d" ${E:-f}`, `CMD ["x"]`, `LABEL 'a'=b`, `EXPOSE 1-3/udp`, `WORKDIR ../x`, `VOLUME ["/a"]`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		changes, err := commit.ParseChanges([]string{s})
		if err != nil {
			return
		}
		if _, err := commit.ApplyChanges([]byte(`{"config":{"Env":["B=1"]}}`), changes); err != nil {
			t.Fatalf("ParseChanges accepted %q but ApplyChanges failed: %v", s, err)
		}
	})
}

// TestLiteralChanges checks typed changes: values are taken as they are
// (spaces, "=", quotes and $ kept), ENV replaces a key in place as the
// Dockerfile form does, CMD without values removes the field, MAINTAINER
// sets the top-level author, and fields not edited are kept.
func TestLiteralChanges(t *testing.T) {
	base := `{"author":"old","x-top":1,"config":{"Env":["A=1","B=2"],"Cmd":["sh"],"Shell":["/bin/bash","-c"],"Healthcheck":{"Test":["NONE"]},"X-Inner":[true]}}`
	env := `B=say "hi" x=y 'q' $HOME`
	out, err := commit.ApplyChanges([]byte(base), []commit.Change{
		commit.Literal("ENV", env, "C= spaced "),
		commit.Literal("LABEL", `k=v "w"=x`),
		commit.Literal("EXPOSE", "8080", "53/udp"),
		commit.Literal("CMD"),
		commit.Literal("WORKDIR", "rel dir"),
		commit.Literal("USER", "a b"),
		commit.Literal("MAINTAINER", "Ada <ada@example.com>"),
		{Instruction: "ENTRYPOINT", Args: "run $X"},
	})
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"author": "Ada <ada@example.com>", "x-top": 1.0, "config": map[string]any{
		"Env": []any{"A=1", env, "C= spaced "}, "Labels": map[string]any{"k": `v "w"=x`},
		"ExposedPorts": map[string]any{"8080/tcp": map[string]any{}, "53/udp": map[string]any{}},
		"WorkingDir":   "/rel dir", "User": "a b", "Entrypoint": []any{"/bin/bash", "-c", "run $X"},
		"Shell": []any{"/bin/bash", "-c"}, "Healthcheck": map[string]any{"Test": []any{"NONE"}}, "X-Inner": []any{true},
	}}
	if g, w := mustMarshal(t, got), mustMarshal(t, want); g != w {
		t.Errorf("config\n got %s\nwant %s", g, w)
	}
	same, err := commit.ApplyChanges([]byte(base), nil)
	if err != nil || string(same) != base {
		t.Errorf("no changes: %s, %v; want the config unchanged", same, err)
	}
	for _, tc := range []struct {
		change commit.Change
		want   string
	}{
		{commit.Literal("ENV", "NOEQUALS"), "use KEY=VALUE"},
		{commit.Literal("LABEL", "=v"), "use KEY=VALUE"},
		{commit.Literal("USER", "a", "b"), "takes one argument"},
		{commit.Literal("EXPOSE", "http"), "ports 1-65535"},
		{commit.Literal("RUN", "make"), "RUN is not an instruction"},
	} {
		if _, err := commit.ApplyChanges([]byte(base), []commit.Change{tc.change}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.change, err, tc.want)
		}
	}
}

// mustMarshal is v as JSON.
func mustMarshal(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
