package control

import (
	"fmt"
	"path/filepath"
	"strings"
)

// OpenStore opens the store named by spec:
//
//   - "" or "bolt": the bbolt file dataDir/StoreFile (BoltStore), for a
//     single edge;
//   - "etcd://HOST:PORT[,HOST:PORT...][/PREFIX]": an etcd cluster
//     (EtcdStore) shared by the edges that name it with the same prefix;
//     PREFIX defaults to DefaultEtcdPrefix ("/culvert/"), e.g.
//     etcd://127.0.0.1:2379/culvert/. The connection is plain (no TLS, no
//     auth): for those, open an EtcdStore with OpenEtcd.
func OpenStore(spec, dataDir string) (Store, error) {
	switch {
	case spec == "" || spec == "bolt":
		return OpenBolt(filepath.Join(dataDir, StoreFile))
	case strings.HasPrefix(spec, "etcd://"):
		cfg, err := parseEtcdSpec(spec)
		if err != nil {
			return nil, err
		}
		return OpenEtcd(cfg)
	}
	return nil, fmt.Errorf("control: store %q: unknown kind: want \"bolt\" (or empty) for the file in the data dir, or etcd://HOST:PORT[,HOST:PORT...][/PREFIX]", spec)
}

// parseEtcdSpec reads etcd://HOST:PORT[,HOST:PORT...][/PREFIX].
func parseEtcdSpec(spec string) (EtcdConfig, error) {
	rest := strings.TrimPrefix(spec, "etcd://")
	hosts, prefix, hasPath := strings.Cut(rest, "/")
	bad := func(why string) (EtcdConfig, error) {
		return EtcdConfig{}, fmt.Errorf("control: store %q: %s (want etcd://HOST:PORT[,HOST:PORT...][/PREFIX])", spec, why)
	}
	if strings.ContainsAny(rest, "@?#") {
		return bad("credentials, queries and fragments are not supported")
	}
	var eps []string
	for _, h := range strings.Split(hosts, ",") {
		h = strings.TrimSpace(h)
		if h == "" {
			return bad("empty host")
		}
		if i := strings.LastIndexByte(h, ':'); i <= 0 || i == len(h)-1 || strings.Trim(h[i+1:], "0123456789") != "" {
			return bad(fmt.Sprintf("host %q has no port", h))
		}
		eps = append(eps, h)
	}
	cfg := EtcdConfig{Endpoints: eps, Prefix: DefaultEtcdPrefix}
	if hasPath && prefix != "" {
		cfg.Prefix = "/" + prefix
		if !strings.HasSuffix(cfg.Prefix, "/") {
			cfg.Prefix += "/"
		}
	}
	return cfg, nil
}
