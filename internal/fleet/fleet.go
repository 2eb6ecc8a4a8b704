// Package fleet is netdrop fleet's model: it asks a Prometheus-compatible
// query API (Prometheus, Thanos, Mimir, VictoriaMetrics all serve
// /api/v1/query) what the netdrop exporters of many nodes reported over a
// range, and ranks node × stage by harm: the worst finding severity seen,
// then the packets lost. Each row says what to run on that node next.
//
// It reads only the exporter's stage families (netdrop_stage_drops_total,
// netdrop_findings, netdrop_findings_expected), whose names and stage
// labels are a public contract, so any netdrop exporter version that
// serves them can be ranked. It does not diagnose: the node's own netdrop
// diagnose does, with the evidence and the fix.
package fleet

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"

	"github.com/netdrop/netdrop/stage"
)

// Defaults of netdrop fleet.
const (
	DefaultRange     = time.Hour
	DefaultTop       = 10
	DefaultNodeLabel = "instance"
)

// The metric families the ranking reads.
const (
	metricStageDrops = "netdrop_stage_drops_total"
	metricFindings   = "netdrop_findings"
	metricExpected   = "netdrop_findings_expected"
)

// ErrNoSeries means the query API answered but holds no netdrop exporter
// data for the range: nothing scrapes an exporter, or under another name.
var ErrNoSeries = errors.New("no netdrop series")

// Options says which query API to ask and what to rank.
type Options struct {
	// URL is the query API's base: http://prometheus:9090, a Thanos
	// Query or VictoriaMetrics address, Mimir's …/prometheus prefix.
	URL string
	// Range is the window drops are counted over; 0 means DefaultRange.
	Range time.Duration
	// NodeLabel is the label that names a node; "" means "instance"
	// (host:port of the scraped exporter). Kubernetes setups often
	// relabel the node name into "node".
	NodeLabel string
	// Selector narrows the series, as PromQL label matchers without
	// braces: job="netdrop",cluster="eu1".
	Selector string
	// Top is how many node × stage rows to keep; 0 means DefaultTop.
	Top int
	// At is the end of the range; zero means now.
	At time.Time
	// Headers are sent with every query (Mimir's X-Scope-OrgID, an
	// Authorization header).
	Headers map[string]string
	// Timeout bounds each query; 0 means 30 s.
	Timeout time.Duration
}

// Severity is the worst finding netdrop diagnose made for a node's stage
// during the range, as netdrop_findings labels it.
type Severity string

// The severities of netdrop_findings, and none.
const (
	SeverityNone     Severity = ""
	SeverityInfo     Severity = "info"
	SeverityWarning  Severity = "warning"
	SeverityCritical Severity = "critical"
)

func (s Severity) rank() int {
	switch s {
	case SeverityCritical:
		return 3
	case SeverityWarning:
		return 2
	case SeverityInfo:
		return 1
	}
	return 0
}

// Row is one node × stage.
type Row struct {
	Node  string   `json:"node"`
	Stage stage.ID `json:"stage"`
	// Drops is the increase of netdrop_stage_drops_total over the range
	// (Prometheus' increase(): extrapolated to the range's ends, so not
	// always a whole number).
	Drops    float64 `json:"drops"`
	RatePerS float64 `json:"rate_per_s"`
	// Severity is the worst finding over the range, "" when netdrop's
	// diagnosis made none (drops below its floors).
	Severity Severity `json:"severity,omitempty"`
	// Expected is set when the node's exporter declares these drops
	// intended (--expect): they rank as info.
	Expected bool `json:"expected,omitempty"`
	// Run is what to run next, on the node, as printed.
	Run []string `json:"run"`
}

// Report is what netdrop fleet prints.
type Report struct {
	Source    string    `json:"source"`
	At        time.Time `json:"at"`
	RangeS    float64   `json:"range_s"`
	NodeLabel string    `json:"node_label"`
	Selector  string    `json:"selector,omitempty"`
	// Nodes are the nodes with netdrop series in the range.
	Nodes []string `json:"nodes"`
	// Silent are nodes that reported during the range but not in its last
	// SilentAfterS seconds: an exporter down, or a node gone, whose loss
	// the ranking cannot show.
	Silent       []string `json:"silent"`
	SilentAfterS float64  `json:"silent_after_s"`
	// NodesWithLoss counts nodes with at least one row.
	NodesWithLoss int `json:"nodes_with_loss"`
	// Rows are the worst node × stage pairs, worst first, at most Top.
	Rows []Row `json:"rows"`
	// More counts the rows left out by Top.
	More int `json:"more"`
	// Worst is the highest severity among all rows, those Top left out
	// included ("" when no node had a finding).
	Worst Severity `json:"worst_severity"`
	// Warnings are the query API's own warnings (a Thanos store that did
	// not answer, a partial response).
	Warnings []string `json:"warnings,omitempty"`
}

// AtLeastWarning reports whether a node had a warning or critical finding
// in the range: netdrop fleet's exit code 1, as diagnose's.
func (r *Report) AtLeastWarning() bool { return r.Worst.rank() >= SeverityWarning.rank() }

// headerTransport adds fixed headers to every request.
type headerTransport struct {
	headers map[string]string
	next    http.RoundTripper
}

func (h headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range h.headers {
		r.Header.Set(k, v)
	}
	return h.next.RoundTrip(r)
}

// checkURL refuses what cannot be a query API's base before any request, so
// a typo is not reported as a network error.
func checkURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("--prometheus %q: %w", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("--prometheus %q: want the query API's base URL, as in http://prometheus:9090", s)
	}
	if strings.HasSuffix(strings.TrimSuffix(u.Path, "/"), "/api/v1") {
		return nil, fmt.Errorf("--prometheus %q: give the base URL without /api/v1 (netdrop adds it)", s)
	}
	return u, nil
}

// Query asks the API at o.URL and ranks what it answers.
func Query(ctx context.Context, o Options) (*Report, error) {
	u, err := checkURL(o.URL)
	if err != nil {
		return nil, err
	}
	o.Range = cmp.Or(o.Range, DefaultRange)
	o.Top = cmp.Or(o.Top, DefaultTop)
	o.NodeLabel = cmp.Or(o.NodeLabel, DefaultNodeLabel)
	o.Timeout = cmp.Or(o.Timeout, 30*time.Second)
	if o.At.IsZero() {
		o.At = time.Now()
	}
	if !legacyLabelName(o.NodeLabel) {
		return nil, fmt.Errorf("--node-label %q is not a label name", o.NodeLabel)
	}
	if o.Range < time.Second {
		return nil, fmt.Errorf("--range %s: at least 1s", o.Range)
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/api/v1/query"
	q := querier{
		client:   &http.Client{Timeout: o.Timeout, Transport: headerTransport{o.Headers, http.DefaultTransport}},
		endpoint: u.String(), o: o, source: strings.TrimSuffix(strings.TrimSuffix(u.Redacted(), "/api/v1/query"), "/"),
	}
	return q.run(ctx)
}

// querier speaks the query API's instant-query endpoint, documented at
// https://prometheus.io/docs/prometheus/latest/querying/api/ and served
// alike by Thanos, Mimir and VictoriaMetrics. It is a POST of a form and
// a JSON answer decoded into prometheus/common's model.Vector: client_golang's
// api/prometheus/v1 would do the same but links json-iterator, whose package
// init (0.7 ms measured with GODEBUG=inittrace=1) every netdrop command
// would pay, fleet or not.
type querier struct {
	client   *http.Client
	endpoint string
	o        Options
	source   string
	warns    []string
}

// apiResponse is the envelope of every query API answer.
type apiResponse struct {
	Status    string   `json:"status"`
	ErrorType string   `json:"errorType"`
	Error     string   `json:"error"`
	Warnings  []string `json:"warnings"`
	Data      struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	} `json:"data"`
}

// query runs one instant query at the range's end and returns its vector.
func (q *querier) query(ctx context.Context, promql string) (model.Vector, error) {
	ctx, cancel := context.WithTimeout(ctx, q.o.Timeout)
	defer cancel()
	form := url.Values{"query": {promql}, "time": {strconv.FormatFloat(float64(q.o.At.UnixMilli())/1000, 'f', 3, 64)}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, q.endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := q.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach %s: %w", q.source, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("read the answer of %s: %w", q.source, err)
	}
	var r apiResponse
	if err := json.Unmarshal(body, &r); err != nil || r.Status == "" {
		snippet := strings.TrimSpace(string(body))
		if len(snippet) > 120 {
			snippet = snippet[:120] + "…"
		}
		return nil, fmt.Errorf("%s answered %s with no query API response (%q): is this Prometheus' base URL? a Mimir or Cortex base needs its /prometheus prefix", q.source, resp.Status, snippet)
	}
	q.warns = append(q.warns, r.Warnings...)
	if r.Status != "success" {
		hint := ""
		switch r.ErrorType {
		case "bad_data":
			hint = " (check --selector and --node-label)"
		case "timeout", "canceled":
			hint = " (shorten --range or narrow --selector)"
		}
		return nil, fmt.Errorf("%s refused the query %s: %s: %s%s", q.source, promql, r.ErrorType, r.Error, hint)
	}
	if r.Data.ResultType != "vector" {
		return nil, fmt.Errorf("query %s: %s answered a %s, not a vector", promql, q.source, r.Data.ResultType)
	}
	var v model.Vector
	if err := json.Unmarshal(r.Data.Result, &v); err != nil {
		return nil, fmt.Errorf("query %s: decode the answer of %s: %w", promql, q.source, err)
	}
	return v, nil
}

// selector returns the series selector for family name.
func (q *querier) selector(name string) string {
	if q.o.Selector == "" {
		return name
	}
	return name + "{" + q.o.Selector + "}"
}

func (q *querier) run(ctx context.Context) (*Report, error) {
	o := q.o
	rng := model.Duration(o.Range).String()
	by := string(o.NodeLabel)
	r := &Report{Source: q.source, At: o.At.UTC(), RangeS: o.Range.Seconds(), NodeLabel: by, Selector: o.Selector, Rows: []Row{}, Nodes: []string{}}

	// Which nodes report at all: without any, say so rather than print
	// an empty ranking that reads as "all healthy".
	nodes, err := q.query(ctx, fmt.Sprintf(`count by (%s) (last_over_time(%s[%s]))`, by, q.selector(metricStageDrops), rng))
	if err != nil {
		return nil, err
	}
	if len(nodes) == 0 {
		sel := q.selector(metricStageDrops)
		return nil, fmt.Errorf("%w: %s holds no %s in the %s before %s: is it scraping netdrop exporter (see its /targets page)%s?",
			ErrNoSeries, q.source, sel, rng, r.At.Format(time.RFC3339), map[bool]string{true: ", and does --selector match", false: ""}[o.Selector != ""])
	}
	for _, s := range nodes {
		r.Nodes = append(r.Nodes, string(s.Metric[model.LabelName(by)]))
	}
	slices.Sort(r.Nodes)
	if len(r.Nodes) == 1 && r.Nodes[0] == "" {
		return nil, fmt.Errorf("the %s series carry no %q label: choose another --node-label (instance always exists)", metricStageDrops, by)
	}

	// Nodes that went quiet: reported in the range, not lately.
	recent := min(o.Range, 5*time.Minute)
	r.SilentAfterS = recent.Seconds()
	r.Silent = []string{}
	if recent < o.Range {
		silent, err := q.query(ctx, fmt.Sprintf(`count by (%[1]s) (last_over_time(%[2]s[%[3]s])) unless count by (%[1]s) (last_over_time(%[2]s[%[4]s]))`,
			by, q.selector(metricStageDrops), rng, model.Duration(recent)))
		if err != nil {
			return nil, err
		}
		for _, s := range silent {
			r.Silent = append(r.Silent, string(s.Metric[model.LabelName(by)]))
		}
		slices.Sort(r.Silent)
	}

	type key struct {
		node string
		st   stage.ID
	}
	rows := map[key]*Row{}
	row := func(m model.Metric) *Row {
		k := key{string(m[model.LabelName(by)]), stage.ID(m["stage"])}
		if rows[k] == nil {
			rows[k] = &Row{Node: k.node, Stage: k.st}
		}
		return rows[k]
	}
	drops, err := q.query(ctx, fmt.Sprintf(`sum by (%s, stage) (increase(%s[%s])) > 0`, by, q.selector(metricStageDrops), rng))
	if err != nil {
		return nil, err
	}
	for _, s := range drops {
		rw := row(s.Metric)
		rw.Drops = float64(s.Value)
		rw.RatePerS = rw.Drops / o.Range.Seconds()
	}
	findings, err := q.query(ctx, fmt.Sprintf(`max by (%s, stage, severity) (max_over_time(%s[%s])) > 0`, by, q.selector(metricFindings), rng))
	if err != nil {
		return nil, err
	}
	for _, s := range findings {
		rw := row(s.Metric)
		if sev := Severity(s.Metric["severity"]); sev.rank() > rw.Severity.rank() {
			rw.Severity = sev
		}
	}
	expected, err := q.query(ctx, fmt.Sprintf(`max by (%s, stage) (max_over_time(%s[%s])) > 0`, by, q.selector(metricExpected), rng))
	if err != nil {
		return nil, err
	}
	for _, s := range expected {
		row(s.Metric).Expected = true
	}

	all := make([]Row, 0, len(rows))
	withLoss := map[string]bool{}
	for _, rw := range rows {
		rw.Run = commands(rw.Node, rw.Stage)
		if math.IsNaN(rw.Drops) {
			rw.Drops = 0
		}
		all = append(all, *rw)
		withLoss[rw.Node] = true
		if rw.Severity.rank() > r.Worst.rank() {
			r.Worst = rw.Severity
		}
	}
	slices.SortFunc(all, func(a, b Row) int {
		return cmp.Or(
			cmp.Compare(b.Severity.rank(), a.Severity.rank()),
			cmp.Compare(b.Drops, a.Drops),
			cmp.Compare(a.Node, b.Node),
			cmp.Compare(stage.Index(a.Stage), stage.Index(b.Stage)),
		)
	})
	r.NodesWithLoss = len(withLoss)
	if len(all) > o.Top {
		r.More = len(all) - o.Top
		all = all[:o.Top]
	}
	r.Rows = all
	r.Warnings = q.warns
	return r, nil
}

// commands is what to run on a node next: netdrop's diagnosis there (the
// cause and the fix, computed from that node's settings), and the counters
// of the stage that lost packets. The node is reached with ssh at the host
// part of its label (an instance label is the exporter's host:port).
func commands(node string, st stage.ID) []string {
	host := node
	if h, _, err := net.SplitHostPort(node); err == nil {
		host = h
	}
	host = quote(host)
	run := []string{"ssh " + host + " netdrop diagnose"}
	if stage.Valid(st) {
		run = append(run, "ssh "+host+" netdrop counters --stage "+string(st)+" --nonzero")
	}
	return run
}

// quote returns s as one shell word: as it is when no shell treats any of
// its characters specially, else in single quotes. Label values come from
// whatever the scrape configuration wrote.
func quote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_-.:@%+=,/", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// legacyLabelName reports whether s can stand unquoted in a PromQL "by"
// clause, which every query API version accepts.
func legacyLabelName(s string) bool {
	for i, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return s != ""
}
