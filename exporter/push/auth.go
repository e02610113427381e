package push

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// dockerHubServer is the key Docker uses for Docker Hub credentials.
const dockerHubServer = "https://index.docker.io/v1/"

// helperTimeout bounds one credential helper run.
const helperTimeout = 30 * time.Second

// dockerConfig is the part of a docker config.json that holds credentials.
type dockerConfig struct {
	Auths       map[string]authEntry `json:"auths"`
	CredHelpers map[string]string    `json:"credHelpers"`
	CredsStore  string               `json:"credsStore"`
}

// authEntry is one "auths" entry: base64 "user:password" in Auth, or
// Username and Password, or an identity (refresh) token.
type authEntry struct {
	Auth          string `json:"auth"`
	Username      string `json:"username"`
	Password      string `json:"password"`
	IdentityToken string `json:"identitytoken"`
}

// credentials answers containerd's authorizer from a docker config
// directory, reading config.json once and running each credential helper at
// most once per host. It remembers every secret it handed out so errors can
// be scrubbed of them.
type credentials struct {
	dir string

	once    sync.Once
	cfg     dockerConfig
	loadErr error

	mu      sync.Mutex
	cache   map[string][2]string
	secrets []string
}

// newCredentials reads credentials from dir, or when dir is empty from
// $DOCKER_CONFIG, then ~/.docker.
func newCredentials(dir string) *credentials {
	if dir == "" {
		dir = os.Getenv("DOCKER_CONFIG")
	}
	if dir == "" {
		if home, err := os.UserHomeDir(); err == nil {
			dir = filepath.Join(home, ".docker")
		}
	}
	return &credentials{dir: dir, cache: map[string][2]string{}}
}

// Get returns the username and secret for host ("" and "" for anonymous
// access). An identity token comes back as an empty username and the token
// as the secret, which containerd exchanges for a bearer token.
func (c *credentials) Get(host string) (string, string, error) {
	c.mu.Lock()
	if v, ok := c.cache[host]; ok {
		c.mu.Unlock()
		return v[0], v[1], nil
	}
	c.mu.Unlock()
	user, secret, err := c.lookup(host)
	if err != nil {
		return "", "", fmt.Errorf("credentials for %s: %w", host, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cache[host] = [2]string{user, secret}
	if secret != "" {
		c.secrets = append(c.secrets, secret, base64.StdEncoding.EncodeToString([]byte(user+":"+secret)))
	}
	return user, secret, nil
}

// lookup finds host's credentials: a credential helper (credHelpers for
// the host, else credsStore) first, then the auths entries.
func (c *credentials) lookup(host string) (string, string, error) {
	c.once.Do(c.load)
	if c.loadErr != nil {
		return "", "", c.loadErr
	}
	keys := serverKeys(host)
	helper := c.cfg.CredsStore
	for _, k := range keys {
		if h, ok := c.cfg.CredHelpers[k]; ok {
			helper = h
			break
		}
	}
	if helper != "" {
		user, secret, err := runHelper(helper, keys[0])
		if err != nil || secret != "" {
			return user, secret, err
		}
	}
	for _, k := range keys {
		if entry, ok := c.cfg.Auths[k]; ok {
			return entry.decode()
		}
	}
	names := slices.Sorted(maps.Keys(c.cfg.Auths))
	for _, key := range names {
		if matchesServer(key, keys) {
			return c.cfg.Auths[key].decode()
		}
	}
	return "", "", nil
}

// configPath names the config file credentials come from, for messages.
func (c *credentials) configPath() string {
	if c.dir == "" {
		return "the docker config"
	}
	return filepath.Join(c.dir, "config.json")
}

// load reads config.json; a missing file means no credentials.
func (c *credentials) load() {
	if c.dir == "" {
		return
	}
	path := c.configPath()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	if err == nil {
		err = json.Unmarshal(b, &c.cfg)
	}
	if err != nil {
		c.loadErr = fmt.Errorf("read docker config %s: %w", path, err)
	}
}

// scrub returns s with every secret handed out so far replaced.
func (c *credentials) scrub(s string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, secret := range c.secrets {
		if len(secret) >= 3 {
			s = strings.ReplaceAll(s, secret, "[REDACTED]")
		}
	}
	return s
}

// decode returns the entry's username and secret.
func (e authEntry) decode() (string, string, error) {
	if e.IdentityToken != "" {
		return "", e.IdentityToken, nil
	}
	if e.Auth == "" {
		return e.Username, e.Password, nil
	}
	raw, err := base64.StdEncoding.DecodeString(e.Auth)
	if err != nil {
		return "", "", errors.New("auths entry: auth is not valid base64")
	}
	user, pass, ok := strings.Cut(string(raw), ":")
	if !ok {
		return "", "", errors.New("auths entry: auth is not base64 of user:password")
	}
	return user, pass, nil
}

// serverKeys returns the config keys that can name host, the one to pass to
// a credential helper first. Docker Hub is known under several names.
func serverKeys(host string) []string {
	switch host {
	case "docker.io", "index.docker.io", "registry-1.docker.io":
		return []string{dockerHubServer, "index.docker.io", "docker.io", "registry-1.docker.io"}
	}
	return []string{host}
}

// matchesServer reports whether an auths key (host, host:port or a URL such
// as https://host/v1/) names one of keys.
func matchesServer(key string, keys []string) bool {
	norm := func(s string) string {
		s = strings.TrimPrefix(strings.TrimPrefix(s, "https://"), "http://")
		h, _, _ := strings.Cut(s, "/")
		return strings.ToLower(h)
	}
	k := norm(key)
	for _, want := range keys {
		if k == norm(want) {
			return true
		}
	}
	return false
}

// helperReply is what "docker-credential-<name> get" prints.
type helperReply struct {
	Username string `json:"Username"`
	Secret   string `json:"Secret"`
}

// runHelper runs docker-credential-<name> get with server on stdin. A
// "credentials not found" answer means anonymous access. Errors quote the
// helper's message (which never holds the secret) but never its reply.
func runHelper(name, server string) (string, string, error) {
	if name == "" || strings.ContainsAny(name, `/\`) {
		return "", "", fmt.Errorf("invalid credential helper name %q", name)
	}
	bin := "docker-credential-" + name
	ctx, cancel := context.WithTimeout(context.Background(), helperTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "get")
	cmd.Stdin = strings.NewReader(server)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stdout.String() + " " + stderr.String())
		if strings.Contains(strings.ToLower(msg), "credentials not found") {
			return "", "", nil
		}
		if len(msg) > 200 {
			msg = msg[:200]
		}
		return "", "", fmt.Errorf("%s get: %w: %s", bin, err, msg)
	}
	var reply helperReply
	if err := json.Unmarshal(stdout.Bytes(), &reply); err != nil {
		return "", "", fmt.Errorf("%s get: reply is not JSON", bin)
	}
	if reply.Username == "<token>" {
		return "", reply.Secret, nil
	}
	return reply.Username, reply.Secret, nil
}
