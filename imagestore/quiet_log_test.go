package imagestore

import "github.com/sirupsen/logrus"

// containerd's local store warns on every open where fsverity is missing;
// keep test and benchmark output readable.
func init() { logrus.SetLevel(logrus.ErrorLevel) }
