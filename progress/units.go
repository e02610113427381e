package progress

import (
	"fmt"
	"strings"
	"time"
)

// HumanBytes formats n bytes with decimal (1000-based) units like BuildKit
// and go-units: "999B", "1.2kB", "12.3MB", "4.5GB". Negative n is "0B".
func HumanBytes(n int64) string {
	if n < 1000 {
		return fmt.Sprintf("%dB", max(n, 0))
	}
	units := []string{"kB", "MB", "GB", "TB", "PB", "EB"}
	v := float64(n) / 1000
	i := 0
	for v >= 999.95 && i < len(units)-1 {
		v /= 1000
		i++
	}
	return fmt.Sprintf("%.1f%s", v, units[i])
}

// seconds formats d like buildctl: seconds with one decimal, "1.2s".
func seconds(d time.Duration) string {
	return fmt.Sprintf("%.1fs", max(d, 0).Seconds())
}

// byteProgress formats "12.3MB / 45.6MB", or "12.3MB" when total is
// unknown, or "" when nothing is known.
func byteProgress(current, total int64) string {
	switch {
	case total > 0:
		return HumanBytes(current) + " / " + HumanBytes(total)
	case current > 0:
		return HumanBytes(current)
	}
	return ""
}

// oneLine flattens s onto one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// truncate cuts s to at most n runes, ending with "..." when cut.
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	if n <= 3 {
		return string(r[:max(n, 0)])
	}
	return string(r[:n-3]) + "..."
}
