package exporter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/netdrop/netdrop/counters"
	"github.com/netdrop/netdrop/droptrace"
	"github.com/netdrop/netdrop/probe"
)

// WithHop adds probe.HopPath to h: a probe client run with --via this
// exporter reads it before and after its run, to learn which of this
// host's stages lost the frames neither end explains. Each request reads
// the counters afresh (a probe window is not a scrape interval, and must
// not move the stage collector's) and, with a tracer, its rows; flows says
// the tracer keeps 5-tuples, so the rows can be cut to the probe's flow.
func WithHop(h http.Handler, opts Options, flows bool) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", h)
	mux.Handle(probe.HopPath, hopHandler(opts, flows))
	return mux
}

func hopHandler(opts Options, flows bool) http.Handler {
	timeout := opts.Timeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var k probe.FlowKey
		if q := r.URL.Query().Get("flow"); q != "" {
			var err error
			if k, err = probe.ParseFlowQuery(q); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
		}
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		rd, err := hopReading(ctx, opts, flows, k)
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(rd)
	})
}

// hopReading reads the watched namespace's counters and the tracer's rows,
// the rows' flows cut to k (the probe's): a router's tracer may hold many
// flows, and the client needs one.
func hopReading(ctx context.Context, opts Options, flows bool, k probe.FlowKey) (probe.HopReading, error) {
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	rd := probe.HopReading{Version: probe.HopReadingVersion, Time: now(), Netns: opts.Netns.Spec()}
	snap, err := counters.CollectIn(ctx, opts.Netns, counters.Options{FS: opts.FS, Sources: opts.Sources})
	if err != nil {
		return rd, fmt.Errorf("read counters: %w", err)
	}
	rd.Counters = snap
	if opts.Tracer == nil {
		rd.TraceNote = "not traced: its exporter runs without --trace"
		return rd, nil
	}
	ts, err := opts.Tracer.Snapshot()
	if err != nil {
		rd.TraceNote = "not traced: " + err.Error()
		return rd, nil
	}
	rd.Traced, rd.TraceFlows = true, flows
	for _, row := range ts.Rows {
		if flows {
			var keep []droptrace.Flow
			for _, f := range row.Flows {
				if k.Matches(f) {
					keep = append(keep, f)
				}
			}
			if len(keep) == 0 {
				continue
			}
			row.Flows = keep
		}
		row.Stacks = nil
		rd.Trace = append(rd.Trace, row)
	}
	return rd, nil
}

// HopClient reads the hop reading of the netdrop exporter at URL (its base
// address, http://host:9469): a probe.Hop.
type HopClient struct {
	URL    string
	Client *http.Client
}

// Name is the exporter's address.
func (h HopClient) Name() string { return h.URL }

// Read asks for one reading with the probe's flow.
func (h HopClient) Read(ctx context.Context, k probe.FlowKey) (probe.HopReading, error) {
	c := h.Client
	if c == nil {
		c = &http.Client{Timeout: 15 * time.Second}
	}
	u, err := url.Parse(h.URL)
	if err != nil {
		return probe.HopReading{}, fmt.Errorf("--via %q: %w", h.URL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return probe.HopReading{}, fmt.Errorf("--via %q: want an http:// or https:// URL of a netdrop exporter", h.URL)
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + probe.HopPath
	u.RawQuery = url.Values{"flow": {k.Query()}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return probe.HopReading{}, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return probe.HopReading{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return probe.HopReading{}, err
	}
	if resp.StatusCode == http.StatusNotFound {
		return probe.HopReading{}, errors.New("the exporter there serves no " + probe.HopPath + " (a netdrop older than the probe's --via)")
	}
	if resp.StatusCode != http.StatusOK {
		return probe.HopReading{}, fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	var rd probe.HopReading
	if err := json.Unmarshal(body, &rd); err != nil {
		return probe.HopReading{}, fmt.Errorf("not a hop reading: %w", err)
	}
	if rd.Version < 1 || rd.Version > probe.HopReadingVersion {
		return probe.HopReading{}, fmt.Errorf("hop reading version %d: this netdrop reads version %d", rd.Version, probe.HopReadingVersion)
	}
	return rd, nil
}
