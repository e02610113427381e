// Package frontendtest holds lade-buildkitd's integration tests: real
// Dockerfile builds driven by the stock buildctl through lade-buildkitd,
// checked with skopeo, umoci and runc and compared with the stock buildkitd.
// The tests need root, runc, skopeo, umoci and docker-registry, and carry the
// build tag "integration"; run them with hack/frontend-test.sh.
package frontendtest
