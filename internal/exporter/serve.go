package exporter

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"

	"github.com/prometheus/exporter-toolkit/web"
)

// Serve serves srv on ln. With a web configuration file (webConfig not
// empty) TLS, client certificates and basic auth follow that file, in the
// format every Prometheus exporter reads with --web.config.file
// (prometheus/exporter-toolkit's docs/web-configuration.md): an exporter on
// a node address then needs no proxy in front of it. The file is read again
// on each connection, so certificates can be rotated in place.
func Serve(ln net.Listener, srv *http.Server, webConfig string, log *slog.Logger) error {
	if webConfig == "" {
		return srv.Serve(ln)
	}
	systemd := false
	addrs := []string{ln.Addr().String()}
	return web.Serve(ln, srv, &web.FlagConfig{WebListenAddresses: &addrs, WebSystemdSocket: &systemd, WebConfigFile: &webConfig}, log)
}

// CheckWebConfig reports a web configuration file that cannot be used
// (unreadable, not YAML, missing certificate files, a password that is not
// a bcrypt hash), so the exporter fails at start instead of on the first
// scrape. An empty path is plain HTTP and always valid.
func CheckWebConfig(path string) error {
	if path == "" {
		return nil
	}
	if err := web.Validate(path); err != nil {
		return fmt.Errorf("web config %s: %w", path, err)
	}
	return nil
}
