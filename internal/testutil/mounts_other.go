//go:build !linux

package testutil

// UnmountUnder does nothing where there are no mounts to clean up.
func UnmountUnder(dir string) {}
