package zstdchunked

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"path/filepath"
	"strconv"
	"unicode/utf8"

	"github.com/vbatts/tar-split/tar/storage"
)

// splitPacker writes tar-split entries byte for byte as tar-split's
// storage.NewJSONPacker does (one JSON object a line, positions counted
// from 0, a file name seen twice refused with storage.ErrDuplicatePath),
// without encoding/json's reflection, which cost the writer more than the
// rolling checksum's bookkeeping. TestSameAsContainersStorage compares
// the result with containers/storage's.
type splitPacker struct {
	w    io.Writer
	buf  []byte
	pos  int
	seen map[string]struct{}
}

func newSplitPacker(w io.Writer) *splitPacker {
	return &splitPacker{w: w, seen: map[string]struct{}{}}
}

// add writes e, as storage's packer's AddEntry.
func (p *splitPacker) add(e storage.Entry) error {
	if e.Name != "" && !utf8.ValidString(e.Name) {
		e.NameRaw, e.Name = []byte(e.Name), ""
	}
	if e.Type == storage.FileType {
		name := filepath.Clean(e.GetName())
		if _, ok := p.seen[name]; ok {
			return storage.ErrDuplicatePath
		}
		p.seen[name] = struct{}{}
	}
	b := append(p.buf[:0], `{"type":`...)
	b = strconv.AppendInt(b, int64(e.Type), 10)
	if e.Name != "" {
		b = append(b, `,"name":`...)
		b = appendJSONString(b, e.Name)
	}
	if len(e.NameRaw) > 0 {
		b = appendBase64(append(b, `,"name_raw":`...), e.NameRaw)
	}
	if e.Size != 0 {
		b = strconv.AppendInt(append(b, `,"size":`...), e.Size, 10)
	}
	b = append(b, `,"payload":`...)
	if e.Payload == nil {
		b = append(b, "null"...)
	} else {
		b = appendBase64(b, e.Payload)
	}
	b = strconv.AppendInt(append(b, `,"position":`...), int64(p.pos), 10)
	b = append(b, "}\n"...)
	p.buf = b
	if _, err := p.w.Write(b); err != nil {
		return err
	}
	p.pos++
	return nil
}

// appendBase64 appends data as a JSON string in standard base64, as
// encoding/json writes a []byte.
func appendBase64(b, data []byte) []byte {
	b = append(b, '"')
	b = base64.StdEncoding.AppendEncode(b, data)
	return append(b, '"')
}

// appendJSONString appends s as encoding/json writes a string: as is
// when it is printable ASCII that needs no escape (HTML characters
// included, which encoding/json escapes), else through encoding/json.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
