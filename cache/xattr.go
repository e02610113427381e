package cache

import (
	"errors"
	"fmt"
	"slices"

	"golang.org/x/sys/unix"
)

// xattr is one extended attribute.
type xattr struct {
	Name  string
	Value []byte
}

// readXattrs reads the xattrs through list and get (the l- or f- system
// calls), sorted by name; none when the filesystem has no xattrs. With
// capOnly it reads security.capability alone, without listing: the same
// xattrs the writer keeps, one call instead of two or more.
func (r *rootFS) readXattrs(list func([]byte) (int, error), get func(string, []byte) (int, error)) ([]xattr, error) {
	if r.capOnly {
		v, err := getXattr(get, capabilityXattr, r.xbuf[:])
		if errors.Is(err, unix.ENODATA) || isNoXattr(err) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("get xattr %s: %w", capabilityXattr, err)
		}
		return []xattr{{Name: capabilityXattr, Value: v}}, nil
	}
	names, err := listXattrs(list, r.xbuf[:])
	if err != nil {
		return nil, fmt.Errorf("list xattrs: %w", err)
	}
	out := make([]xattr, 0, len(names))
	for _, n := range names {
		v, err := getXattr(get, n, r.xbuf[:])
		if errors.Is(err, unix.ENODATA) {
			continue // removed since listed
		}
		if err != nil {
			return nil, fmt.Errorf("get xattr %s: %w", n, err)
		}
		out = append(out, xattr{Name: n, Value: v})
	}
	return out, nil
}

// listXattrs lists the xattr names through list, sorted; none when
// unsupported. A first call with the small buffer gets most lists at
// once.
func listXattrs(list func([]byte) (int, error), small []byte) ([]string, error) {
	for {
		buf := small
		n, err := list(buf)
		if errors.Is(err, unix.ERANGE) {
			var size int
			if size, err = list(nil); err != nil {
				return nil, err
			}
			buf = make([]byte, size)
			if n, err = list(buf); errors.Is(err, unix.ERANGE) {
				continue // grew meanwhile
			}
		}
		if isNoXattr(err) || (err == nil && n == 0) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		var names []string
		for _, b := range splitNul(buf[:n]) {
			names = append(names, string(b))
		}
		slices.Sort(names)
		return names, nil
	}
}

// getXattr reads one xattr through get: at once when it fits in the
// small buffer, else asking its size first.
func getXattr(get func(string, []byte) (int, error), name string, small []byte) ([]byte, error) {
	if n, err := get(name, small); !errors.Is(err, unix.ERANGE) {
		if err != nil {
			return nil, err
		}
		return append([]byte(nil), small[:n]...), nil
	}
	for {
		size, err := get(name, nil)
		if err != nil {
			return nil, err
		}
		buf := make([]byte, size)
		n, err := get(name, buf)
		if errors.Is(err, unix.ERANGE) {
			continue // grew meanwhile
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}

func isNoXattr(err error) bool {
	return errors.Is(err, unix.ENOTSUP)
}

func splitNul(b []byte) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		i := slices.Index(b, 0)
		if i < 0 {
			i = len(b)
		}
		if i > 0 {
			out = append(out, b[:i])
		}
		if i == len(b) {
			break
		}
		b = b[i+1:]
	}
	return out
}
