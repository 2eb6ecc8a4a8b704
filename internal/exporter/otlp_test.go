package exporter

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	colmetricpb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricpb "go.opentelemetry.io/proto/otlp/metrics/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/netdrop/netdrop/counters"
	"github.com/netdrop/netdrop/internal/buildinfo"
)

// otlpReceiver is an OTLP/HTTP endpoint as a collector serves it: POST
// /v1/metrics, protobuf, gzip or not. It decodes each request with the
// generated OTLP types and keeps it; answer, when set, replaces the
// success reply.
type otlpReceiver struct {
	mu       sync.Mutex
	requests []*colmetricpb.ExportMetricsServiceRequest
	headers  []http.Header
	got      chan struct{}
	answer   func(w http.ResponseWriter)
}

func newOTLPReceiver(t *testing.T) (*otlpReceiver, *httptest.Server) {
	t.Helper()
	r := &otlpReceiver{got: make(chan struct{}, 100)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodPost || req.URL.Path != "/v1/metrics" || req.Header.Get("Content-Type") != "application/x-protobuf" {
			http.Error(w, fmt.Sprintf("want POST /v1/metrics application/x-protobuf, got %s %s %s", req.Method, req.URL.Path, req.Header.Get("Content-Type")), http.StatusBadRequest)
			return
		}
		var body io.Reader = req.Body
		if req.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(req.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = zr
		}
		b, err := io.ReadAll(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var m colmetricpb.ExportMetricsServiceRequest
		if err := proto.Unmarshal(b, &m); err != nil {
			http.Error(w, "decode: "+err.Error(), http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		r.requests = append(r.requests, &m)
		r.headers = append(r.headers, req.Header.Clone())
		answer := r.answer
		r.mu.Unlock()
		defer func() { r.got <- struct{}{} }()
		if answer != nil {
			answer(w)
			return
		}
		out, _ := proto.Marshal(&colmetricpb.ExportMetricsServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(out)
	}))
	t.Cleanup(srv.Close)
	return r, srv
}

func (r *otlpReceiver) last(t *testing.T) (*colmetricpb.ExportMetricsServiceRequest, http.Header) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.requests) == 0 {
		t.Fatal("the OTLP endpoint received nothing")
	}
	return r.requests[len(r.requests)-1], r.headers[len(r.headers)-1]
}

// series is one sample by name and sorted labels, with its kind as the
// receiving side sees it.
type series map[string]string

func seriesKey(name string, labels map[string]string) string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(name + "{")
	for i, k := range keys {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, "%s=%q", k, labels[k])
	}
	b.WriteString("}")
	return b.String()
}

// textSeries parses what /metrics served: the value and TYPE of every
// sample of the netdrop_ families.
func textSeries(t *testing.T, text string) (series, map[string]string) {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	out, help := series{}, map[string]string{}
	for name, mf := range fams {
		if !strings.HasPrefix(name, "netdrop_") || name == "netdrop_scrape_collector_duration_seconds" {
			continue
		}
		help[name] = mf.GetHelp()
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			var v float64
			kind := strings.ToLower(mf.GetType().String())
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				v = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				v = m.GetGauge().GetValue()
			default:
				t.Fatalf("%s: netdrop serves no %s", name, kind)
			}
			out[seriesKey(name, labels)] = fmt.Sprintf("%s %g", kind, v)
		}
	}
	return out, help
}

func attrs(kvs []*commonpb.KeyValue) map[string]string {
	m := map[string]string{}
	for _, kv := range kvs {
		m[kv.GetKey()] = kv.GetValue().GetStringValue()
	}
	return m
}

// otlpSeries is textSeries of a decoded OTLP request: a monotonic
// cumulative sum reads as a counter, a gauge as a gauge; anything else is
// reported as what it is, so a wrong mapping shows in the diff.
func otlpSeries(t *testing.T, req *colmetricpb.ExportMetricsServiceRequest) (series, map[string]string) {
	t.Helper()
	out, help := series{}, map[string]string{}
	for _, rm := range req.GetResourceMetrics() {
		for _, sm := range rm.GetScopeMetrics() {
			for _, m := range sm.GetMetrics() {
				name := m.GetName()
				if !strings.HasPrefix(name, "netdrop_") || name == "netdrop_scrape_collector_duration_seconds" {
					continue
				}
				help[name] = m.GetDescription()
				var kind string
				var pts []*metricpb.NumberDataPoint
				switch d := m.GetData().(type) {
				case *metricpb.Metric_Gauge:
					kind, pts = "gauge", d.Gauge.GetDataPoints()
				case *metricpb.Metric_Sum:
					kind, pts = "counter", d.Sum.GetDataPoints()
					if !d.Sum.GetIsMonotonic() || d.Sum.GetAggregationTemporality() != metricpb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE {
						kind = fmt.Sprintf("sum(monotonic=%v,%s)", d.Sum.GetIsMonotonic(), d.Sum.GetAggregationTemporality())
					}
				default:
					t.Errorf("%s: unexpected OTLP data %T", name, d)
					continue
				}
				for _, p := range pts {
					if p.GetTimeUnixNano() == 0 {
						t.Errorf("%s: a data point without a time", name)
					}
					if kind == "counter" && (p.GetStartTimeUnixNano() == 0 || p.GetStartTimeUnixNano() > p.GetTimeUnixNano()) {
						t.Errorf("%s: a cumulative point must start before its time: start %d, time %d", name, p.GetStartTimeUnixNano(), p.GetTimeUnixNano())
					}
					out[seriesKey(name, attrs(p.GetAttributes()))] = fmt.Sprintf("%s %g", kind, p.GetAsDouble())
				}
			}
		}
	}
	return out, help
}

// TestOTLPMatchesMetrics pushes the fixture exporter's metrics to a real
// OTLP/HTTP endpoint and compares every netdrop series, its kind, value and
// help, with what /metrics serves in the same state. The exporter first
// attributes drops between the fixtures' "before" and "later" trees, so the
// stage totals and kernel counters are not zero; the scrape and the push
// compared are the two after it, both over an interval in which nothing
// moved, so every value must agree exactly.
func TestOTLPMatchesMetrics(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC)}
	build := buildinfo.Info{Version: "v0.1.0", Revision: "0123456789abcdef", GoVersion: "go1.26.8", Platform: "linux/amd64"}
	opts := Options{
		FS:        counters.NewFS("testdata/before"),
		Sources:   []counters.Source{counters.SNMPSource{}},
		Summarize: fixtureSummary(t),
		Now:       clock.now,
		Top:       5,
		Build:     build,
	}
	reg, e, err := NewRegistry(opts)
	if err != nil {
		t.Fatal(err)
	}
	h := Handler(reg, opts)
	scrapeText(t, h)
	e.opts.FS = counters.NewFS("testdata/later")
	scrapeText(t, h)
	text := scrapeText(t, h)

	recv, srv := newOTLPReceiver(t)
	p, err := NewPusher(reg, OTLPOptions{URL: srv.URL, Headers: map[string]string{"X-Scope-OrgID": "fleet-a"}, Build: build, Netns: "web"})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Push(context.Background()); err != nil {
		t.Fatal(err)
	}
	req, hdr := recv.last(t)

	want, wantHelp := textSeries(t, text)
	got, gotHelp := otlpSeries(t, req)
	// The one value that moves between two reads of the same state: when
	// the snapshot was taken, one tick of the fixture's clock later.
	const ts = "netdrop_counters_snapshot_timestamp_seconds{}"
	var t0, t1 float64
	fmt.Sscanf(want[ts], "gauge %g", &t0)
	fmt.Sscanf(got[ts], "gauge %g", &t1)
	if t1-t0 != 10 {
		t.Errorf("%s: /metrics %q, OTLP %q; want the push one clock tick (10 s) later", ts, want[ts], got[ts])
	}
	delete(want, ts)
	delete(got, ts)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("OTLP series differ from /metrics (-/metrics +OTLP):\n%s", diff)
	}
	if diff := cmp.Diff(wantHelp, gotHelp); diff != "" {
		t.Errorf("OTLP descriptions differ from /metrics HELP (-/metrics +OTLP):\n%s", diff)
	}
	// The fixtures must make this comparison mean something: drops
	// attributed to a stage, kernel counters, gauges.
	nonzero := map[string]int{}
	for _, v := range got {
		if kind, val, _ := strings.Cut(v, " "); val != "0" {
			nonzero[kind]++
		}
	}
	if nonzero["counter"] < 10 || nonzero["gauge"] < 10 {
		t.Errorf("non-zero series pushed: %v; the fixture has more than 10 of each", nonzero)
	}
	if v := got[`netdrop_stage_drops_total{stage="tcp-listen"}`]; v != "counter 30" {
		t.Errorf(`netdrop_stage_drops_total{stage="tcp-listen"} = %q over OTLP, want the fixture's 30 listen overflows`, v)
	}
	if len(got) < 50 {
		t.Errorf("only %d series pushed; the fixture serves more", len(got))
	}

	res := attrs(req.GetResourceMetrics()[0].GetResource().GetAttributes())
	host, _ := os.Hostname()
	wantRes := map[string]string{"service.name": "netdrop", "service.version": "v0.1.0", "service.instance.id": host + "/web", "host.name": host, "netdrop.netns": "web"}
	if diff := cmp.Diff(wantRes, res); diff != "" {
		t.Errorf("resource (-want +got):\n%s", diff)
	}
	if got := hdr.Get("X-Scope-OrgID"); got != "fleet-a" {
		t.Errorf("header X-Scope-OrgID = %q, want the --otlp-header value", got)
	}
}

// TestOTLPEncodesEveryKind round-trips a counter, a gauge, an untyped
// metric, a summary and a classic histogram (the Go and process collectors
// the command adds serve the last two) through the generated OTLP types.
func TestOTLPEncodesEveryKind(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "c_total", Help: "a counter"}, []string{"k"})
	c.WithLabelValues("").Add(3) // an empty label value is still a value
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "g", Help: "a gauge"})
	g.Set(-1.5)
	u := prometheus.NewUntypedFunc(prometheus.UntypedOpts{Name: "u", Help: "untyped"}, func() float64 { return math.Inf(1) })
	s := prometheus.NewSummary(prometheus.SummaryOpts{Name: "s", Help: "a summary", Objectives: map[float64]float64{0.5: 0.05}})
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "h", Help: "a histogram", Buckets: []float64{1, 10}})
	for _, v := range []float64{0.5, 2, 3, 50} {
		s.Observe(v)
		h.Observe(v)
	}
	reg.MustRegister(c, g, u, s, h)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Unix(1000, 0)
	now := time.Unix(2000, 0)
	b, points, err := marshalOTLP(otlpBatch{resource: []attr{{"service.name", "x"}}, scope: "s", version: "v", families: fams, now: now, start: start})
	if err != nil {
		t.Fatal(err)
	}
	if points != 5 {
		t.Errorf("points = %d, want 5", points)
	}
	var req colmetricpb.ExportMetricsServiceRequest
	if err := proto.Unmarshal(b, &req); err != nil {
		t.Fatal(err)
	}
	ns := func(t time.Time) uint64 { return uint64(t.UnixNano()) }
	kv := func(k, v string) *commonpb.KeyValue {
		return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
	}
	want := &colmetricpb.ExportMetricsServiceRequest{ResourceMetrics: []*metricpb.ResourceMetrics{{
		Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{kv("service.name", "x")}},
		ScopeMetrics: []*metricpb.ScopeMetrics{{
			Scope: &commonpb.InstrumentationScope{Name: "s", Version: "v"},
			Metrics: []*metricpb.Metric{
				{Name: "c_total", Description: "a counter", Data: &metricpb.Metric_Sum{Sum: &metricpb.Sum{
					AggregationTemporality: metricpb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE, IsMonotonic: true,
					DataPoints: []*metricpb.NumberDataPoint{{Attributes: []*commonpb.KeyValue{kv("k", "")}, StartTimeUnixNano: createdOf(t, fams, "c_total"), TimeUnixNano: ns(now), Value: &metricpb.NumberDataPoint_AsDouble{AsDouble: 3}}},
				}}},
				{Name: "g", Description: "a gauge", Data: &metricpb.Metric_Gauge{Gauge: &metricpb.Gauge{
					DataPoints: []*metricpb.NumberDataPoint{{TimeUnixNano: ns(now), Value: &metricpb.NumberDataPoint_AsDouble{AsDouble: -1.5}}},
				}}},
				{Name: "h", Description: "a histogram", Data: &metricpb.Metric_Histogram{Histogram: &metricpb.Histogram{
					AggregationTemporality: metricpb.AggregationTemporality_AGGREGATION_TEMPORALITY_CUMULATIVE,
					DataPoints: []*metricpb.HistogramDataPoint{{
						StartTimeUnixNano: createdOf(t, fams, "h"), TimeUnixNano: ns(now), Count: 4, Sum: proto.Float64(55.5),
						BucketCounts: []uint64{1, 2, 1}, ExplicitBounds: []float64{1, 10},
					}},
				}}},
				{Name: "s", Description: "a summary", Data: &metricpb.Metric_Summary{Summary: &metricpb.Summary{
					DataPoints: []*metricpb.SummaryDataPoint{{
						StartTimeUnixNano: createdOf(t, fams, "s"), TimeUnixNano: ns(now), Count: 4, Sum: 55.5,
						QuantileValues: []*metricpb.SummaryDataPoint_ValueAtQuantile{{Quantile: 0.5, Value: 2}},
					}},
				}}},
				{Name: "u", Description: "untyped", Data: &metricpb.Metric_Gauge{Gauge: &metricpb.Gauge{
					DataPoints: []*metricpb.NumberDataPoint{{TimeUnixNano: ns(now), Value: &metricpb.NumberDataPoint_AsDouble{AsDouble: math.Inf(1)}}},
				}}},
			},
		}},
	}}}
	if !proto.Equal(want, &req) {
		t.Errorf("decoded request:\n%v\nwant:\n%v", &req, want)
	}
}

// createdOf is the start time a family's first sample carries: its created
// timestamp when the client sets one, else the batch's start.
func createdOf(t *testing.T, fams []*dto.MetricFamily, name string) uint64 {
	t.Helper()
	for _, mf := range fams {
		if mf.GetName() != name {
			continue
		}
		m := mf.GetMetric()[0]
		for _, ts := range []interface {
			IsValid() bool
			AsTime() time.Time
		}{m.GetCounter().GetCreatedTimestamp(), m.GetSummary().GetCreatedTimestamp(), m.GetHistogram().GetCreatedTimestamp()} {
			if ts.IsValid() {
				return uint64(ts.AsTime().UnixNano())
			}
		}
		return uint64(time.Unix(1000, 0).UnixNano())
	}
	t.Fatalf("no family %s", name)
	return 0
}

// TestOTLPFailures: a collector that is down, one that refuses with a
// reason, and one that accepts part of a push each give an error that
// says so; Run logs the first failure and the recovery, and keeps going.
func TestOTLPFailures(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewGauge(prometheus.GaugeOpts{Name: "netdrop_x", Help: "x"}))

	// Down: a port nothing listens on any more.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + ln.Addr().String()
	ln.Close()
	p, err := NewPusher(reg, OTLPOptions{URL: down})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Push(context.Background()); err == nil || !strings.Contains(err.Error(), "connection refused") || !strings.Contains(err.Error(), down+"/v1/metrics") {
		t.Errorf("push to a closed port: %v, want connection refused naming %s/v1/metrics", err, down)
	}

	recv, srv := newOTLPReceiver(t)
	recv.answer = func(w http.ResponseWriter) {
		b, _ := proto.Marshal(&status.Status{Code: 16, Message: "invalid tenant token"})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusUnauthorized)
		w.Write(b)
	}
	p, err = NewPusher(reg, OTLPOptions{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Push(context.Background()); err == nil || !strings.Contains(err.Error(), "401 Unauthorized: invalid tenant token") {
		t.Errorf("push refused with a Status: %v, want the status and its message", err)
	}
	recv.mu.Lock()
	recv.answer = func(w http.ResponseWriter) {
		b, _ := proto.Marshal(&colmetricpb.ExportMetricsServiceResponse{PartialSuccess: &colmetricpb.ExportMetricsPartialSuccess{RejectedDataPoints: 1, ErrorMessage: "too old"}})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(b)
	}
	recv.mu.Unlock()
	if err := p.Push(context.Background()); err == nil || !strings.Contains(err.Error(), "rejected 1 of 1 data points: too old") {
		t.Errorf("partial success: %v, want the rejected count and message", err)
	}

	// Run: fails, logs once, then works and says so.
	var log syncBuffer
	recv, srv = newOTLPReceiver(t)
	recv.mu.Lock()
	recv.answer = func(w http.ResponseWriter) { http.Error(w, "overloaded", http.StatusServiceUnavailable) }
	recv.mu.Unlock()
	p, err = NewPusher(reg, OTLPOptions{URL: srv.URL, Interval: time.Second, Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	drain := func() {
		select {
		case <-recv.got:
		case <-time.After(10 * time.Second):
			t.Fatal("no push within 10 s")
		}
	}
	drain()
	recv.mu.Lock()
	recv.answer = nil
	recv.mu.Unlock()
	drain()
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(log.String(), "works again") && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	out := log.String()
	for _, want := range []string{"level=ERROR msg=\"OTLP push failed; /metrics keeps serving\"", "503 Service Unavailable: overloaded", "msg=\"OTLP push works again\""} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestParseOTLPURL(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{in: "http://collector", want: "http://collector:4318/v1/metrics"},
		{in: "https://otlp.example.com:443/", want: "https://otlp.example.com:443/v1/metrics"},
		{in: "http://prom:9090/api/v1/otlp/v1/metrics", want: "http://prom:9090/api/v1/otlp/v1/metrics"},
		{in: "http://[::1]:4318", want: "http://[::1]:4318/v1/metrics"},
		{in: "grpc://collector:4317", err: "OTLP over HTTP"},
		{in: "collector:4318", err: "want an http:// or https:// URL"},
		{in: "http://:4318", err: "no host"},
		{in: "http://user:pw@collector", err: "--otlp-header"},
		{in: "http://collector:4318/%zz", err: "invalid URL escape"},
	} {
		u, err := parseOTLPURL(tc.in)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("parseOTLPURL(%q) = %v, %v; want an error with %q", tc.in, u, err, tc.err)
			}
		case err != nil:
			t.Errorf("parseOTLPURL(%q): %v", tc.in, err)
		case u.String() != tc.want:
			t.Errorf("parseOTLPURL(%q) = %s, want %s", tc.in, u, tc.want)
		}
	}
	if _, err := ParseOTLPHeaders([]string{"novalue"}); err == nil {
		t.Error("ParseOTLPHeaders accepted a header without =")
	}
	if h, err := ParseOTLPHeaders([]string{"Authorization=Bearer a=b"}); err != nil || h["Authorization"] != "Bearer a=b" {
		t.Errorf("ParseOTLPHeaders = %v, %v; want the value after the first =", h, err)
	}
	if _, err := NewPusher(prometheus.NewRegistry(), OTLPOptions{URL: "http://x", Interval: 100 * time.Millisecond}); err == nil {
		t.Error("NewPusher accepted an interval under 1s")
	}
}

// BenchmarkOTLPEncode measures turning one gather of the running kernel's
// exporter (every collector but the socket view, as the user running the
// benchmark can read it) into an OTLP request, and reports its size before
// and after gzip, against the text /metrics serves for the same registry.
//
//	go test ./internal/exporter -run '^$' -bench OTLPEncode
func BenchmarkOTLPEncode(b *testing.B) {
	reg, _, err := NewRegistry(Options{NoSockets: true})
	if err != nil {
		b.Fatal(err)
	}
	reg.Gather() // the stage attribution starts from the second reading
	fams, err := reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	batch := otlpBatch{resource: otlpResource(OTLPOptions{}), scope: "s", families: fams, now: time.Now(), start: time.Now()}
	var body []byte
	var points int
	b.ResetTimer()
	for b.Loop() {
		body, points, err = marshalOTLP(batch)
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	zw.Write(body)
	zw.Close()
	var text bytes.Buffer
	for _, mf := range fams {
		expfmt.MetricFamilyToText(&text, mf)
	}
	b.ReportMetric(float64(points), "points")
	b.ReportMetric(float64(len(body)), "otlp-bytes")
	b.ReportMetric(float64(zb.Len()), "otlp-gzip-bytes")
	b.ReportMetric(float64(text.Len()), "text-bytes")
}
