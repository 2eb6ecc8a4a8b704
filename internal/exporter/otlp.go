package exporter

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/netdrop/netdrop/internal/buildinfo"
)

// DefaultOTLPInterval is how often metrics are pushed over OTLP: the
// scrape interval most Prometheus setups use, so a fleet that mixes both
// sees the same resolution.
const DefaultOTLPInterval = 15 * time.Second

// OTLPOptions configures an OTLP push.
type OTLPOptions struct {
	// URL is the collector's OTLP/HTTP endpoint: http:// or https://, the
	// path /v1/metrics when the URL has none.
	URL string
	// Interval between pushes; 0 means DefaultOTLPInterval.
	Interval time.Duration
	// Headers are sent with every push (an API key, a tenant ID).
	Headers map[string]string
	// Logger receives one line per failed push and one when pushes work
	// again.
	Logger *slog.Logger
	// Build names the service version in the resource; zero reads the
	// running binary.
	Build buildinfo.Info
	// Netns is the watched namespace, recorded in the resource so two
	// exporters on one host stay apart.
	Netns string
	// Client replaces the HTTP client (tests); nil uses one with a
	// timeout of the interval, at most 10 s.
	Client *http.Client
}

// parseOTLPURL checks s and completes it: the scheme must be http or https
// (OTLP over HTTP with protobuf, the protocol every collector and
// Prometheus' own OTLP receiver accept), the host is required, the port
// defaults to 4318 and the path to /v1/metrics.
func parseOTLPURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("--otlp %q: %w", s, err)
	}
	switch u.Scheme {
	case "http", "https":
	case "grpc", "grpcs":
		return nil, fmt.Errorf("--otlp %q: netdrop pushes OTLP over HTTP; give the collector's OTLP/HTTP endpoint, as in http://collector:4318", s)
	default:
		return nil, fmt.Errorf("--otlp %q: want an http:// or https:// URL, as in http://collector:4318 (OTLP over HTTP)", s)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("--otlp %q: no host (want %s://HOST[:PORT][/PATH])", s, u.Scheme)
	}
	if u.User != nil || u.Fragment != "" {
		return nil, fmt.Errorf("--otlp %q: user info and fragments are not sent; pass credentials with --otlp-header", s)
	}
	if u.Port() == "" {
		u.Host += ":4318"
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/v1/metrics"
	}
	return u, nil
}

// ParseOTLPHeaders turns repeated NAME=VALUE flags into headers.
func ParseOTLPHeaders(kvs []string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	h := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("--otlp-header %q: want NAME=VALUE", kv)
		}
		h[k] = v
	}
	return h, nil
}

// Pusher sends what a Gatherer holds over OTLP at an interval. It gathers
// the same registry /metrics serves, so names, labels and values are the
// ones a scrape sees: counters become cumulative monotonic sums, gauges
// gauges, labels attributes (otlpwire.go). A push collects like a scrape:
// the stage totals are cumulative whoever reads them, and the findings
// gauges cover the time since the previous reading, push or scrape.
type Pusher struct {
	opts     OTLPOptions
	url      *url.URL
	g        prometheus.Gatherer
	resource []attr
	start    time.Time
}

// NewPusher checks the options; it does not connect (a collector that is
// down shows up as failed pushes in the log).
func NewPusher(g prometheus.Gatherer, o OTLPOptions) (*Pusher, error) {
	u, err := parseOTLPURL(o.URL)
	if err != nil {
		return nil, err
	}
	if o.Interval == 0 {
		o.Interval = DefaultOTLPInterval
	}
	if o.Interval < time.Second {
		return nil, fmt.Errorf("--otlp-interval %s: at least 1s", o.Interval)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Client == nil {
		// A push must end before the next one starts.
		o.Client = &http.Client{Timeout: min(o.Interval, 10*time.Second)}
	}
	return &Pusher{opts: o, url: u, g: g, resource: otlpResource(o), start: time.Now()}, nil
}

// otlpResource says who pushes: service.name netdrop, its version, and
// service.instance.id the host name (with the namespace when one is
// watched), which a Prometheus receiving OTLP turns into the instance label
// netdrop fleet groups by.
func otlpResource(o OTLPOptions) []attr {
	host, _ := os.Hostname()
	instance := cmp.Or(host, "unknown")
	if o.Netns != "" {
		instance += "/" + o.Netns
	}
	attrs := []attr{
		{"service.name", "netdrop"},
		{"service.version", cmp.Or(o.Build, buildinfo.Read()).Version},
		{"service.instance.id", instance},
		{"host.name", host},
	}
	if o.Netns != "" {
		attrs = append(attrs, attr{"netdrop.netns", o.Netns})
	}
	return attrs
}

// Endpoint is where pushes go, for the log.
func (p *Pusher) Endpoint() string { return p.url.Redacted() }

// Push gathers once and sends it.
func (p *Pusher) Push(ctx context.Context) error {
	// Gather returns what it could read with the error of what it could
	// not, as /metrics serves it (promhttp.ContinueOnError).
	fams, gatherErr := p.g.Gather()
	build := cmp.Or(p.opts.Build, buildinfo.Read())
	body, points, encErr := marshalOTLP(otlpBatch{
		resource: p.resource, scope: "github.com/netdrop/netdrop/internal/exporter", version: build.Version,
		families: fams, now: time.Now(), start: p.start,
	})
	encErr = errors.Join(gatherErr, encErr)
	if points == 0 {
		return fmt.Errorf("nothing to push: %w", cmp.Or(encErr, errors.New("no data points")))
	}
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	zw.Write(body) // a bytes.Buffer does not fail
	zw.Close()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url.String(), &zb)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "gzip")
	req.Header.Set("User-Agent", "netdrop/"+build.Version)
	for k, v := range p.opts.Headers {
		req.Header.Set(k, v)
	}
	resp, err := p.opts.Client.Do(req)
	if err != nil {
		return fmt.Errorf("push to %s: %w", p.Endpoint(), err)
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		why := strings.TrimSpace(string(rb))
		if ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); ct == "application/x-protobuf" {
			why = statusMessage(rb)
		}
		if len(why) > 200 {
			why = why[:200] + "…"
		}
		return fmt.Errorf("push to %s: %s: %s", p.Endpoint(), resp.Status, cmp.Or(why, "no reason given"))
	}
	if r, err := parsePartialSuccess(rb); err == nil && (r.rejected > 0 || r.message != "") {
		return fmt.Errorf("push to %s: the collector rejected %d of %d data points: %s", p.Endpoint(), r.rejected, points, r.message)
	}
	return encErr
}

// Run pushes at once and then every interval until ctx ends, logging
// failures (the first of a run of failures, then every tenth, so a
// collector that is down for a day does not fill the log) and the push
// that works again. It never stops the exporter: /metrics keeps serving
// whatever happens to the collector.
func (p *Pusher) Run(ctx context.Context) {
	log := p.opts.Logger
	log.Info("pushing metrics over OTLP", "endpoint", p.Endpoint(), "interval", p.opts.Interval)
	t := time.NewTicker(p.opts.Interval)
	defer t.Stop()
	failed := 0
	for {
		err := p.Push(ctx)
		switch {
		case ctx.Err() != nil:
		case err != nil:
			failed++
			if failed%10 == 1 {
				log.Error("OTLP push failed; /metrics keeps serving", "endpoint", p.Endpoint(), "failures", failed, "err", err)
			}
		case failed > 0:
			log.Info("OTLP push works again", "endpoint", p.Endpoint(), "after_failures", failed)
			failed = 0
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
