package push

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	remoteerrors "github.com/containerd/containerd/v2/core/remotes/errors"
)

// RequestError is a registry request that failed with a retryable answer
// (5xx, 429, 408) or a connection error. It names the request (URL without
// its query) and quotes the start of the registry's answer. It
// deliberately does not unwrap to the connection error, so that
// containerd's own request loop does not retry it again.
type RequestError struct {
	// Method and URL identify the request; URL has no query.
	Method, URL string
	// Attempts is how many times the request was sent.
	Attempts int
	// StatusCode and Status are the registry's answer; 0 and "" when the
	// connection failed.
	StatusCode int
	Status     string
	// Body is the start of the registry's answer body, if any.
	Body string
	// Cause is the connection error's message, if any.
	Cause string
	// exhausted is set when the transport already retried the request.
	exhausted bool
}

// Error describes the request and the registry's answer.
func (e *RequestError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: ", e.Method, e.URL)
	if e.StatusCode != 0 {
		fmt.Fprintf(&b, "registry answered %s", e.Status)
		if e.Body != "" {
			fmt.Fprintf(&b, ": %s", e.Body)
		}
	} else {
		fmt.Fprintf(&b, "connection failed: %s", e.Cause)
	}
	if e.Attempts > 1 {
		fmt.Fprintf(&b, " (after %d attempts)", e.Attempts)
	}
	return b.String()
}

// maxErrorBody bounds the answer body quoted in a RequestError.
const maxErrorBody = 512

// newRequestError builds the error for req's failed last attempt and
// closes resp's body.
func newRequestError(req *http.Request, resp *http.Response, err error, attempts int, exhausted bool) *RequestError {
	u := *req.URL
	u.RawQuery, u.User, u.Fragment = "", nil, ""
	e := &RequestError{Method: req.Method, URL: u.String(), Attempts: attempts, exhausted: exhausted}
	if err != nil {
		e.Cause = err.Error()
		return e
	}
	e.StatusCode, e.Status = resp.StatusCode, resp.Status
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	_ = resp.Body.Close()
	e.Body = strings.TrimSpace(string(b))
	return e
}

// retryTransport retries idempotent requests (GET, HEAD) on retryable
// answers and connection errors with exponential backoff. Other requests
// (POST, PUT, PATCH) carry a body that cannot be re-sent safely, so they go
// out once and a retryable failure becomes a *RequestError that the blob
// level (retry) answers by redoing the whole blob upload.
type retryTransport struct {
	next     http.RoundTripper
	attempts int
	delay    time.Duration
	// beforeFallback marks a transport under containerd's HTTP fallback,
	// which retries a failed connection to an HTTPS URL without a port as
	// plain HTTP on port 80: such failures are returned at once.
	beforeFallback bool
}

// RoundTrip implements http.RoundTripper.
func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	idempotent := req.Method == http.MethodGet || req.Method == http.MethodHead
	for attempt := 1; ; attempt++ {
		resp, err := t.next.RoundTrip(req)
		if !retryableResponse(resp, err) || (err != nil && t.fallbackHandles(req)) {
			return resp, err
		}
		if !idempotent || attempt >= t.attempts {
			return nil, newRequestError(req, resp, err, attempt, idempotent)
		}
		wait := backoff(t.delay, attempt, resp)
		if resp != nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			_ = resp.Body.Close()
		}
		if err := sleep(req.Context(), wait); err != nil {
			return nil, err
		}
	}
}

// fallbackHandles reports whether a connection failure of req is for the
// HTTP fallback above to answer.
func (t *retryTransport) fallbackHandles(req *http.Request) bool {
	return t.beforeFallback && req.URL.Scheme == "https" && req.URL.Port() == ""
}

// retryableResponse reports whether a round trip's outcome is worth another
// attempt.
func retryableResponse(resp *http.Response, err error) bool {
	if err != nil {
		return retryableConnError(err)
	}
	return retryableStatus(resp.StatusCode)
}

// retryableStatus reports whether an HTTP status is transient.
func retryableStatus(code int) bool {
	switch code {
	case http.StatusRequestTimeout, http.StatusTooManyRequests:
		return true
	case http.StatusNotImplemented, http.StatusHTTPVersionNotSupported:
		return false
	}
	return code >= 500 && code <= 599
}

// retryableConnError reports whether err is a transient connection failure:
// refused, reset, broken or timed-out connections and truncated answers.
// Cancellation and TLS/certificate failures are final.
func retryableConnError(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var (
		unknownAuth x509.UnknownAuthorityError
		hostErr     x509.HostnameError
		certErr     x509.CertificateInvalidError
		verifyErr   *tls.CertificateVerificationError
		recordErr   tls.RecordHeaderError
	)
	if errors.As(err, &unknownAuth) || errors.As(err, &hostErr) || errors.As(err, &certErr) ||
		errors.As(err, &verifyErr) || errors.As(err, &recordErr) {
		return false
	}
	for _, target := range []error{io.EOF, io.ErrUnexpectedEOF, io.ErrClosedPipe, syscall.ECONNRESET,
		syscall.ECONNREFUSED, syscall.ECONNABORTED, syscall.EPIPE} {
		if errors.Is(err, target) {
			return true
		}
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		return true
	}
	var netErr net.Error
	return errors.As(err, &netErr) && netErr.Timeout()
}

// retryableAtBlobLevel reports whether a failed blob transfer should be
// redone as a whole: a single-shot request that failed transiently, a
// connection broken mid-stream, or a transient status that reached
// containerd. Requests the transport already retried are final.
func retryableAtBlobLevel(err error) bool {
	var reqErr *RequestError
	if errors.As(err, &reqErr) {
		return !reqErr.exhausted
	}
	var status remoteerrors.ErrUnexpectedStatus
	if errors.As(err, &status) {
		return retryableStatus(status.StatusCode)
	}
	return retryableConnError(err)
}

// backoff returns the wait before attempt+1: delay doubled per attempt
// with ±25% jitter, at least the registry's Retry-After, at most
// maxRetryDelay.
func backoff(delay time.Duration, attempt int, resp *http.Response) time.Duration {
	d := delay << min(attempt-1, 16)
	if d <= 0 || d > maxRetryDelay {
		d = maxRetryDelay
	}
	d = d*3/4 + rand.N(d/2+1)
	if resp != nil {
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			d = max(d, time.Duration(s)*time.Second)
		}
	}
	return min(d, maxRetryDelay)
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

// retry runs fn until it succeeds, fails for good or has run attempts
// times, sleeping with backoff in between. The final error says how many
// attempts were made and, when the registry's answer is known, presents
// that answer (a *RequestError) without containerd's wrapping.
func retry[T any](ctx context.Context, attempts int, delay time.Duration, fn func(context.Context) (T, error)) (T, error) {
	for attempt := 1; ; attempt++ {
		v, err := fn(ctx)
		if err == nil {
			return v, nil
		}
		if ctx.Err() != nil || !retryableAtBlobLevel(err) || attempt >= attempts {
			var reqErr *RequestError
			if errors.As(err, &reqErr) {
				err = reqErr
			}
			if attempt > 1 {
				err = fmt.Errorf("giving up after %d attempts: %w", attempt, err)
			}
			return v, err
		}
		if err := sleep(ctx, backoff(delay, attempt, nil)); err != nil {
			return v, err
		}
	}
}
