package push

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/lade-build/lade/progress"
)

// Defaults applied to zero Options fields.
const (
	// DefaultConcurrency is the number of blobs moved at once per registry.
	DefaultConcurrency = 4
	// DefaultMaxAttempts bounds the attempts of one request or blob upload.
	DefaultMaxAttempts = 5
	// DefaultRetryDelay is the first backoff delay; it doubles per attempt.
	DefaultRetryDelay = 250 * time.Millisecond
	// DefaultResponseTimeout bounds the wait for a registry's response
	// headers; a stalled registry then counts as a failed attempt.
	DefaultResponseTimeout = 60 * time.Second
	// maxRetryDelay caps one backoff delay, Retry-After included.
	maxRetryDelay = 10 * time.Second
)

// Options control one Push or Pull. The zero value is valid: HTTPS with the
// system's roots (plain HTTP allowed for localhost registries), credentials
// from the docker config, 4 blobs at once, 5 attempts.
type Options struct {
	// Insecure allows plain HTTP and unverified TLS for every registry:
	// HTTPS is tried without certificate checks, then plain HTTP. Registries
	// on localhost/127.0.0.1/::1 always fall back to plain HTTP (their TLS
	// is still verified when they speak it).
	Insecure bool
	// CAFile is a PEM file of extra root certificates, added to the system
	// pool.
	CAFile string
	// Concurrency bounds the blobs pushed or fetched at once; 0 means
	// DefaultConcurrency. Each call talks to one registry, so this is a
	// per-host limit.
	Concurrency int
	// MaxAttempts bounds the attempts of every idempotent request (GET,
	// HEAD) and of every blob upload (HEAD, POST, PUT, retried as a whole)
	// on 5xx, 429, 408 and connection errors; 0 means DefaultMaxAttempts,
	// 1 disables retries.
	MaxAttempts int
	// RetryDelay is the first backoff delay between attempts; it doubles
	// per attempt (with jitter, at most 10s, longer if the registry sends
	// Retry-After). 0 means DefaultRetryDelay.
	RetryDelay time.Duration
	// ResponseTimeout bounds the wait for each response's headers once a
	// request is sent: a registry that stalls longer fails the attempt,
	// which is retried. 0 means DefaultResponseTimeout.
	ResponseTimeout time.Duration
	// ByDigest pushes the root by digest only: the reference must have no
	// tag (a name, or name@digest of the root).
	ByDigest bool
	// DockerConfigDir is the directory holding config.json for
	// credentials; empty means $DOCKER_CONFIG, then ~/.docker.
	DockerConfigDir string
	// Progress receives one vertex per blob; nil discards events.
	Progress progress.Writer
	// HTTPClient, when set, supplies the base transport (and timeout)
	// instead of lade's own; TLS settings are then the client's, so CAFile
	// must be empty. Meant for tests.
	HTTPClient *http.Client
}

// Validate checks the options on their own, without touching the network
// or the file system.
func (o Options) Validate() error {
	if o.Concurrency < 0 {
		return fmt.Errorf("concurrency %d is negative: use 0 for the default (%d)", o.Concurrency, DefaultConcurrency)
	}
	if o.MaxAttempts < 0 {
		return fmt.Errorf("max attempts %d is negative: use 0 for the default (%d) or 1 for no retries", o.MaxAttempts, DefaultMaxAttempts)
	}
	if o.ResponseTimeout < 0 {
		return fmt.Errorf("response timeout %s is negative: use 0 for the default (%s)", o.ResponseTimeout, DefaultResponseTimeout)
	}
	if o.RetryDelay < 0 {
		return fmt.Errorf("retry delay %s is negative: use 0 for the default (%s)", o.RetryDelay, DefaultRetryDelay)
	}
	if o.HTTPClient != nil && o.CAFile != "" {
		return errors.New("a CA file cannot apply to a caller-supplied HTTP client: configure its transport's TLS instead")
	}
	return nil
}

// withDefaults returns o with zero fields set to their defaults.
func (o Options) withDefaults() Options {
	if o.Concurrency == 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.MaxAttempts == 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	if o.RetryDelay == 0 {
		o.RetryDelay = DefaultRetryDelay
	}
	if o.ResponseTimeout == 0 {
		o.ResponseTimeout = DefaultResponseTimeout
	}
	o.Progress = progress.OrDiscard(o.Progress)
	return o
}
