package imagestore

import (
	"errors"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/containerd/containerd/v2/core/leases"
)

// Labels naming the process that holds a lease made by WithLease, so that
// Check and Prune can tell a lease of a running export from one left by a
// process that died (SIGKILL, OOM, power loss) without waiting LeaseExpiry.
const (
	labelOwnerHost  = "lade.owner.host"  // os.Hostname
	labelOwnerBoot  = "lade.owner.boot"  // /proc/sys/kernel/random/boot_id
	labelOwnerPID   = "lade.owner.pid"   // the process
	labelOwnerStart = "lade.owner.start" // its start time (/proc/PID/stat field 22), against PID reuse
)

// owner identifies a process across PID reuse and reboots.
type owner struct{ host, boot, pid, start string }

var (
	selfOnce sync.Once
	selfID   owner
)

// self is this process's owner identity.
func self() owner {
	selfOnce.Do(func() {
		selfID.host, _ = os.Hostname()
		if b, err := os.ReadFile("/proc/sys/kernel/random/boot_id"); err == nil {
			selfID.boot = strings.TrimSpace(string(b))
		}
		pid := os.Getpid()
		selfID.pid = strconv.Itoa(pid)
		selfID.start, _ = procStart(pid)
	})
	return selfID
}

// procStart returns a process's start time; an error matching
// fs.ErrNotExist when there is no such process.
func procStart(pid int) (string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", err
	}
	i := strings.LastIndexByte(string(b), ')') // comm may hold spaces and ')'
	if i < 0 {
		return "", errors.New("unexpected /proc stat format")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return "", errors.New("unexpected /proc stat format")
	}
	return f[19], nil
}

// ownerLabels are the labels of a new lease; nil where /proc is missing.
func ownerLabels() map[string]string {
	o := self()
	if o.host == "" || o.boot == "" || o.start == "" {
		return nil
	}
	return map[string]string{labelOwnerHost: o.host, labelOwnerBoot: o.boot, labelOwnerPID: o.pid, labelOwnerStart: o.start}
}

// ownerGone reports whether the process that took l is known to be gone.
// Leases of other hosts, or without owner labels, are never judged gone.
func ownerGone(l leases.Lease) (pid string, gone bool) {
	me := self()
	host, boot, pid, start := l.Labels[labelOwnerHost], l.Labels[labelOwnerBoot], l.Labels[labelOwnerPID], l.Labels[labelOwnerStart]
	if host == "" || boot == "" || pid == "" || start == "" || me.boot == "" || host != me.host {
		return pid, false
	}
	if boot != me.boot {
		return pid, true
	}
	n, err := strconv.Atoi(pid)
	if err != nil {
		return pid, false
	}
	now, err := procStart(n)
	if err != nil {
		return pid, errors.Is(err, fs.ErrNotExist)
	}
	return pid, now != start
}
