// Package reliability holds lade's fault and hostile-input tests (issue #7):
// exports cancelled and killed at random points, a full disk, corrupted
// blobs, concurrent exporters on one store, file trees with every kind of
// file metadata round-tripped through the real unpackers, and hostile layer
// archives on every path that reads or applies a tar. The package has no
// code of its own: everything is in its tests, which drive the library and
// a lade binary built in TestMain, as root, with the tools
// hack/install-test-deps.sh installs.
package reliability
