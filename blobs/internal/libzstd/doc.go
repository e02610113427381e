// Package libzstd is a zstd stream encoder on the system's libzstd
// (Debian's libzstd-dev), through cgo bindings of lade's own. It is built
// only with cgo and the build tag native (`go build -tags native`, which
// also builds lade's other native encoders; the older tag libzstd builds
// this one alone), so a default build needs no C library; without them
// Available is false, NewWriter fails, and lade uses klauspost's pure-Go
// encoder.
//
// The encoder is single-threaded (no zstd worker threads), so its bytes
// depend only on the input, the level and the library version, never on
// the number of cores or on how the input is split into writes.
package libzstd
