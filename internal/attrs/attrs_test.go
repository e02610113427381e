package attrs

import (
	"strings"
	"testing"

	"github.com/lade-build/lade/blobs"
)

func TestParseOutput(t *testing.T) {
	cases := []struct {
		in   string
		want string // error substring, "" for success
		chk  func(Output) bool
	}{
		{"type=oci,dest=out.tar", "", func(o Output) bool { return o.Tar && o.Dest == "out.tar" }},
		{"type=oci,dest=dir,tar=false", "", func(o Output) bool { return !o.Tar }},
		{"type=image,name=a:1,name=b:2,push", "", func(o Output) bool { return o.Push && len(o.Names) == 2 }},
		{`type=image,"name=a:1,b:2"`, "", func(o Output) bool { return len(o.Names) == 2 }},
		{"type=docker,dest=x.tar,compression=zstd,oci-mediatypes=true,compression-level=19", "", func(o Output) bool {
			return o.Options.Compression.Type == blobs.Zstd && *o.Options.Compression.Level == 19
		}},
		{"type=oci,dest=x,compression-level=3", "", func(o Output) bool { return o.Options.Compression.Type == blobs.Gzip }},
		{"type=oci,dest=x,oci-mediatypes=false", "", func(o Output) bool { return o.Options.Docker }},
		{"type=oci,dest=x,source-date-epoch=10,rewrite-timestamp", "", func(o Output) bool { return o.Options.Epoch.Unix() == 10 && o.Options.RewriteTimestamp }},
		{"type=oci,dest=x,annotation.a=1,annotation-index.b=2,annotation[linux/arm64].c=3,annotation-manifest-descriptor[linux/amd64].d=4", "", func(o Output) bool {
			a := o.Annotations
			return a.Manifest[""]["a"] == "1" && a.Index["b"] == "2" && a.Manifest["linux/arm64"]["c"] == "3" && a.ManifestDescriptor["linux/amd64"]["d"] == "4"
		}},
		{"type=oci,dest=x,annotation-index[linux/arm64].i=1,annotation-index-descriptor[linux/arm64].d=2", "", func(o Output) bool {
			// BuildKit puts them on the index, whatever the platform; the
			// platform is kept only for the export to check it exists.
			a := o.Annotations
			_, named := a.Manifest["linux/arm64"]
			return a.Index["i"] == "1" && a.IndexDescriptor["d"] == "2" && named && len(a.Manifest["linux/arm64"]) == 0
		}},
		{"type=image,danging-name-empty-only=true", "", func(o Output) bool { return o.DanglingEmptyOnly }},
		{"type=oci,dest=x,compresion=zstd", `did you mean "compression"`, nil},
		{"type=oci,dest=x,push=true", `unknown attribute "push"`, nil},
		{"type=tar,dest=x", `unknown output type "tar"`, nil},
		{"dest=x", "output has no type", nil},
		{"type=oci", "needs dest", nil},
		{"type=oci,dest=x,compression=lz4", `unknown compression "lz4"`, nil},
		{"type=oci,dest=x,compression-level=high", "not an integer", nil},
		{"type=oci,dest=x,compression=gzip,compression-level=11", "out of range", nil},
		{"type=oci,dest=x,tar=maybe", `tar="maybe" is not a boolean`, nil},
		{"type=oci,dest=x,source-date-epoch=yesterday", "not a Unix time", nil},
		// The epoch may come later (SOURCE_DATE_EPOCH, or per platform from a
		// frontend): the writer refuses a platform without one
		// (exporter's TestCommitRewriteNeedsEveryPlatformEpoch).
		{"type=oci,dest=x,rewrite-timestamp=true", "", func(o Output) bool { return o.Options.RewriteTimestamp && o.Options.Epoch == nil }},
		{"type=docker,dest=x,compression=zstd,oci-mediatypes=false", "", func(o Output) bool { return o.Options.Docker && o.Options.Compression.Type == blobs.Zstd }},
		{"type=image,push=true", "needs name=", nil},
		{"type=oci,dest=x,annotation-foo.a=1", `unknown level "foo"`, nil},
		{"type=oci,dest=x,annotation.=1", "has no key", nil},
		{"type=oci,dest=x,dest=y", "given twice", nil},
	}
	for _, c := range cases {
		m, err := ParseCSV(c.in)
		var o Output
		if err == nil {
			o, err = ParseOutput(m)
		}
		if c.want != "" {
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s: error %v, want %q", c.in, err, c.want)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		if !c.chk(o) {
			t.Errorf("%s: parsed wrong: %+v", c.in, o)
		}
	}
}

func FuzzParseOutput(f *testing.F) {
	for _, s := range []string{"type=oci,dest=x", "type=image,name=a,push=", "type=docker,dest=-,annotation[linux/arm64].a=b", `"a=b,c"`, "annotation-index-descriptor.x=y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseCSV(s)
		if err != nil {
			return
		}
		o, err := ParseOutput(m)
		if err == nil && o.Type == "" {
			t.Fatalf("accepted an output without type: %q", s)
		}
		if err != nil && err.Error() == "" {
			t.Fatal("empty error")
		}
	})
}

func TestParseOutputLenient(t *testing.T) {
	cases := []struct {
		in   map[string]string
		want string // error substring, "" for success
		rest []string
		chk  func(Output) bool
	}{
		{map[string]string{"type": "image", "attest:provenance": "mode=max", "prefer-image-digest": "true", "buildinfo-attrs": "true", "buildinfo": "false"},
			"", []string{"attest:provenance", "prefer-image-digest", "buildinfo-attrs", "buildinfo"}, nil},
		// Keys of another output type pass through, as in BuildKit.
		{map[string]string{"type": "image", "tar": "false", "dest": "x"}, "", []string{"tar", "dest"}, func(o Output) bool { return o.Tar && o.Dest == "" }},
		{map[string]string{"type": "oci", "dest": "x", "push": "true"}, "", []string{"push"}, func(o Output) bool { return !o.Push }},
		{map[string]string{"type": "oci", "dest": "x", "annotations": "x"}, "", []string{"annotations"}, nil},
		{map[string]string{"type": "oci", "dest": "x", "source-date-epoch": ""}, "", nil, func(o Output) bool { return o.Options.Epoch == nil }},
		{map[string]string{"type": "oci", "dest": "x", "rewrite-timestamp": "true"}, "", nil, func(o Output) bool { return o.Options.RewriteTimestamp }},
		{map[string]string{"type": "image", "danging-name-empty-only": "true", "dangling-name-empty-only": "true"}, "", nil, func(o Output) bool { return o.DanglingEmptyOnly }},
		// What BuildKit accepts: docker with tar=false (an OCI layout
		// directory), push without a name (nothing pushed).
		{map[string]string{"type": "docker", "dest": "x", "tar": "false"}, "", nil, func(o Output) bool { return !o.Tar }},
		{map[string]string{"type": "image", "push": "true", "push-by-digest": "true"}, "", nil, func(o Output) bool { return o.Push }},
		{map[string]string{"type": "image", "psh": "true"}, `did you mean "push"`, nil, nil},
		{map[string]string{"type": "oci", "dest": "x", "compresion": "zstd"}, `did you mean "compression"`, nil, nil},
		{map[string]string{"type": "oci", "dest": "x", "annotation-foo.a": "1"}, `unknown level "foo"`, nil, nil},
		{map[string]string{"type": "oci", "dest": "x", "source-date-epoch": "soon"}, "not a Unix time", nil, nil},
	}
	for _, c := range cases {
		o, rest, err := ParseOutputLenient(c.in)
		if c.want != "" {
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%v: error %v, want %q", c.in, err, c.want)
			}
			continue
		}
		if err != nil {
			t.Errorf("%v: %v", c.in, err)
			continue
		}
		if len(rest) != len(c.rest) {
			t.Errorf("%v: rest %v, want keys %v", c.in, rest, c.rest)
		}
		for _, k := range c.rest {
			if rest[k] != c.in[k] {
				t.Errorf("%v: rest[%q]=%q, want %q", c.in, k, rest[k], c.in[k])
			}
		}
		if c.chk != nil && !c.chk(o) {
			t.Errorf("%v: parsed wrong: %+v", c.in, o)
		}
	}
}
