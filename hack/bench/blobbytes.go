package main

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

// manifestOrIndex holds the fields of an image manifest or index that the
// blob byte count needs.
type manifestOrIndex struct {
	Manifests []struct {
		Digest      string            `json:"digest"`
		Annotations map[string]string `json:"annotations"`
	} `json:"manifests"`
	Layers []struct {
		Digest string `json:"digest"`
		Size   int64  `json:"size"`
	} `json:"layers"`
}

// layerBytes sums the sizes of the distinct layer blobs of the image that
// get(top) returns, following an index into its image manifests and
// leaving attestation manifests out. get returns a manifest or an index by
// reference ("" for the top one).
func layerBytes(get func(ref string) ([]byte, error)) (int64, error) {
	seen := map[string]bool{}
	var total int64
	var walk func(ref string, depth int) error
	walk = func(ref string, depth int) error {
		if depth > 3 {
			return errors.New("indexes nested too deep")
		}
		b, err := get(ref)
		if err != nil {
			return err
		}
		var m manifestOrIndex
		if err := json.Unmarshal(b, &m); err != nil {
			return fmt.Errorf("manifest %s: %w", ref, err)
		}
		for _, l := range m.Layers {
			if !seen[l.Digest] {
				seen[l.Digest] = true
				total += l.Size
			}
		}
		for _, c := range m.Manifests {
			if c.Annotations["vnd.docker.reference.type"] == "attestation-manifest" {
				continue
			}
			if err := walk(c.Digest, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	return total, walk("", 0)
}

// layerBytes returns the layer blob bytes of repo:latest in the registry.
func (r *registry) layerBytes(repo string) (int64, error) {
	hc := &http.Client{Timeout: 30 * time.Second}
	return layerBytes(func(ref string) ([]byte, error) {
		if ref == "" {
			ref = "latest"
		}
		req, err := http.NewRequest(http.MethodGet, "http://"+r.host+"/v2/"+repo+"/manifests/"+ref, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Accept", strings.Join([]string{
			"application/vnd.oci.image.index.v1+json", "application/vnd.oci.image.manifest.v1+json",
			"application/vnd.docker.distribution.manifest.list.v2+json", "application/vnd.docker.distribution.manifest.v2+json",
		}, ", "))
		resp, err := hc.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("registry: GET %s: %s", req.URL, resp.Status)
		}
		return io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	})
}

// ociLayerBytes returns the layer blob bytes of the image in an OCI
// layout tar, reading its index.json and the manifests it names.
func ociLayerBytes(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	small := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, fmt.Errorf("%s: %w", path, err)
		}
		if h.Size <= 4<<20 {
			if small[h.Name], err = io.ReadAll(tr); err != nil {
				return 0, fmt.Errorf("%s: %w", path, err)
			}
		}
	}
	return layerBytes(func(ref string) ([]byte, error) {
		name := "index.json"
		if ref != "" {
			name = "blobs/" + strings.Replace(ref, ":", "/", 1)
		}
		b, ok := small[name]
		if !ok {
			return nil, fmt.Errorf("%s: no %s", path, name)
		}
		return b, nil
	})
}
