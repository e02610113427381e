package zstdchunked

import (
	"bytes"
	"errors"
	"testing"

	"github.com/vbatts/tar-split/tar/storage"
)

// TestSplitPackerAsTarSplit: splitPacker writes what tar-split's own JSON
// packer writes for names that need escaping (quotes, HTML characters,
// control characters, U+2028, non-ASCII), names that are not UTF-8,
// empty and absent payloads, and refuses the same duplicate names.
func TestSplitPackerAsTarSplit(t *testing.T) {
	names := []string{"plain/file.txt", `quo"te\back`, "<html>&amp;", "tab\tnew\nline", "caf\u00e9/\u2028/\u65e5\u672c",
		"bad\xff\xfeutf8", "./dir/../plain/file.txt", "dir/", ""}
	var ours, theirs bytes.Buffer
	op, tp := newSplitPacker(&ours), storage.NewJSONPacker(&theirs)
	dups := 0
	for i, name := range names {
		entries := []storage.Entry{
			{Type: storage.SegmentType, Payload: []byte{0, 1, 2, byte(i)}},
			{Type: storage.SegmentType, Payload: []byte{}},
			{Type: storage.FileType, Size: int64(i) * 1000, Payload: []byte("crc64sum")},
			{Type: storage.FileType, Size: 0},
		}
		entries[2].SetName(name)
		entries[3].SetName(name + "-empty")
		for _, e := range entries {
			oerr := op.add(e)
			_, terr := tp.AddEntry(e)
			if errors.Is(oerr, storage.ErrDuplicatePath) {
				dups++
			}
			if errors.Is(oerr, storage.ErrDuplicatePath) != errors.Is(terr, storage.ErrDuplicatePath) || (oerr == nil) != (terr == nil) {
				t.Errorf("entry %+v: error %v, tar-split's %v", e, oerr, terr)
			}
		}
	}
	if dups == 0 {
		t.Error("no duplicate name was refused: the test should have one")
	}
	if !bytes.Equal(ours.Bytes(), theirs.Bytes()) {
		t.Errorf("tar-split differs from tar-split's packer:\n%s\n%s", ours.Bytes(), theirs.Bytes())
	}
	if !bytes.Contains(ours.Bytes(), []byte(`"name_raw"`)) || !bytes.Contains(ours.Bytes(), []byte(`\u003c`)) {
		t.Error("the test names exercise neither raw names nor HTML escapes")
	}
}
