package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/moby/buildkit/cmd/buildkitd/config"
)

// serverTLS returns the TLS configuration of the tcp listeners, nil when
// no certificate is configured. With a CA, clients must present a
// certificate it signed (mutual TLS), as buildkitd requires.
func serverTLS(c config.TLSConfig) (*tls.Config, error) {
	if c.Cert == "" && c.Key == "" {
		if c.CA != "" {
			return nil, errors.New("--tlscacert (grpc.tls.ca) needs --tlscert and --tlskey (grpc.tls.cert, grpc.tls.key): the server presents its own certificate")
		}
		return nil, nil
	}
	if c.Cert == "" || c.Key == "" {
		return nil, errors.New("you must specify key and cert file if one is specified: set both --tlscert and --tlskey (grpc.tls.cert and grpc.tls.key)")
	}
	cert, err := tls.LoadX509KeyPair(c.Cert, c.Key)
	if err != nil {
		return nil, fmt.Errorf("could not load server key pair %s, %s: %w", c.Cert, c.Key, err)
	}
	conf := &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2"}}
	if c.CA == "" {
		return conf, nil
	}
	pem, err := os.ReadFile(c.CA)
	if err != nil {
		return nil, fmt.Errorf("could not read ca certificate: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("failed to append ca cert: %s holds no PEM certificate", c.CA)
	}
	conf.ClientAuth = tls.RequireAndVerifyClientCert
	conf.ClientCAs = pool
	return conf, nil
}

// activatedListener returns the first socket systemd passed (fd://), as
// buildkitd does; naming a descriptor is not supported, as in buildkitd.
func activatedListener(name string, tlsConfig *tls.Config) (net.Listener, error) {
	var ls []net.Listener
	var err error
	if tlsConfig != nil {
		ls, err = activation.TLSListeners(tlsConfig)
	} else {
		ls, err = activation.Listeners()
	}
	if err != nil {
		return nil, err
	}
	if len(ls) == 0 {
		return nil, errors.New("no sockets found via socket activation: make sure the service was started by systemd")
	}
	if name != "" {
		return nil, fmt.Errorf("fd://%s: selecting a socket by name is not supported yet, use fd://", name)
	}
	return ls[0], nil
}
