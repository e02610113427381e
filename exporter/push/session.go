package push

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"

	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	remoteerrors "github.com/containerd/containerd/v2/core/remotes/errors"
)

// session is the registry state of one Push or Pull call: a fresh
// containerd resolver (a resolver reused across registries pushes nothing),
// its status tracker, HTTP client and credentials. It is never shared
// between calls.
type session struct {
	opts     Options
	resolver remotes.Resolver
	tracker  docker.StatusTracker
	creds    *credentials
	idle     []interface{ CloseIdleConnections() }
}

// newSession builds the per-call resolver from opts (defaults applied).
func newSession(opts Options) (*session, error) {
	s := &session{opts: opts, tracker: docker.NewInMemoryTracker(), creds: newCredentials(opts.DockerConfigDir)}
	transport, err := s.transport()
	if err != nil {
		return nil, err
	}
	client := &http.Client{Transport: transport}
	if opts.HTTPClient != nil {
		client.Timeout = opts.HTTPClient.Timeout
		client.Jar = opts.HTTPClient.Jar
	}
	authorizer := docker.NewDockerAuthorizer(docker.WithAuthClient(client), docker.WithAuthCreds(s.creds.Get))
	hosts := docker.ConfigureDefaultRegistries(
		docker.WithClient(client),
		docker.WithAuthorizer(authorizer),
		// Always start with HTTPS: plain HTTP is reached through the
		// fallback transport, only for hosts that allow it.
		docker.WithPlainHTTP(func(string) (bool, error) { return false, nil }),
	)
	s.resolver = docker.NewResolver(docker.ResolverOptions{Hosts: hosts, Tracker: s.tracker})
	return s, nil
}

// transport returns the session's round tripper: retries over verified
// HTTPS for ordinary hosts and, for hosts that allow plain HTTP (Insecure,
// or localhost), an HTTPS-then-HTTP fallback over retries.
func (s *session) transport() (http.RoundTripper, error) {
	var secure, insecure http.RoundTripper
	if s.opts.HTTPClient != nil {
		secure = s.opts.HTTPClient.Transport
		if secure == nil {
			secure = http.DefaultTransport
		}
		insecure = secure
	} else {
		cfg, err := tlsConfig(s.opts.CAFile)
		if err != nil {
			return nil, err
		}
		base := docker.DefaultHTTPTransport(cfg)
		base.ResponseHeaderTimeout = s.opts.ResponseTimeout
		loose := base.Clone()
		if s.opts.Insecure {
			loose.TLSClientConfig.InsecureSkipVerify = true
		}
		s.idle = append(s.idle, base, loose)
		secure, insecure = base, loose
	}
	// Retries sit below the fallback so that errors name the scheme really
	// used, and skip what the fallback answers by switching to plain HTTP.
	retrying := func(next http.RoundTripper, beforeFallback bool) http.RoundTripper {
		return &retryTransport{next: next, attempts: s.opts.MaxAttempts, delay: s.opts.RetryDelay, beforeFallback: beforeFallback}
	}
	return &hostRouter{
		secure:   retrying(secure, false),
		fallback: docker.NewHTTPFallback(retrying(insecure, true)),
		insecure: s.opts.Insecure,
	}, nil
}

// close releases the session's idle connections.
func (s *session) close() {
	for _, t := range s.idle {
		t.CloseIdleConnections()
	}
}

// explainAuth adds to an authorization failure where the credentials came
// from: containerd reports a 401 answered without credentials as "no basic
// auth credentials", without the status.
func (s *session) explainAuth(err error, host string) error {
	var status remoteerrors.ErrUnexpectedStatus
	switch {
	case err == nil:
		return nil
	case errors.Is(err, docker.ErrInvalidAuthorization):
		return fmt.Errorf("%w: registry %s answered 401 Unauthorized and %s has no credentials for it (docker login %s)",
			err, host, s.creds.configPath(), host)
	case errors.As(err, &status) && status.StatusCode == http.StatusUnauthorized:
		return fmt.Errorf("%w: registry %s rejected the credentials from %s", err, host, s.creds.configPath())
	}
	return err
}

// scrub wraps err so that its message holds none of the credentials the
// session used. errors.Is/As still see the original chain.
func (s *session) scrub(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if clean := s.creds.scrub(msg); clean != msg {
		return &scrubbedError{msg: clean, err: err}
	}
	return err
}

// scrubbedError is an error whose message had credentials removed.
type scrubbedError struct {
	msg string
	err error
}

// Error returns the scrubbed message.
func (e *scrubbedError) Error() string { return e.msg }

// Unwrap returns the original error.
func (e *scrubbedError) Unwrap() error { return e.err }

// hostRouter sends requests for hosts allowed plain HTTP through the
// fallback transport and all others through the verified one.
type hostRouter struct {
	secure, fallback http.RoundTripper
	insecure         bool
}

// RoundTrip implements http.RoundTripper.
func (h *hostRouter) RoundTrip(req *http.Request) (*http.Response, error) {
	if h.insecure || docker.IsLocalhost(req.URL.Host) {
		return h.fallback.RoundTrip(req)
	}
	return h.secure.RoundTrip(req)
}

// tlsConfig returns a TLS config trusting the system roots plus the PEM
// certificates in caFile.
func tlsConfig(caFile string) (*tls.Config, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("read CA file: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, errors.New("read CA file " + caFile + ": no PEM certificates in it")
		}
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}
