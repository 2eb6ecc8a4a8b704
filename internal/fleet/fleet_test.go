package fleet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/netdrop/netdrop/stage"
)

// answer is the body the fake API gives to queries that contain match.
type answer struct{ match, body string }

// fakeAPI answers instant queries at /api/v1/query with the body of the
// first answer whose match the query contains (an empty vector when none
// does), in the JSON shape Prometheus 3 gives, and records each query with
// its time and X-Scope-OrgID header.
func fakeAPI(t *testing.T, answers ...answer) (*httptest.Server, *[]string) {
	t.Helper()
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/query" {
			http.NotFound(w, r)
			return
		}
		q := r.FormValue("query")
		seen = append(seen, q+" @"+r.FormValue("time")+" "+r.Header.Get("X-Scope-OrgID"))
		w.Header().Set("Content-Type", "application/json")
		for _, a := range answers {
			if strings.Contains(q, a.match) {
				fmt.Fprint(w, a.body)
				return
			}
		}
		fmt.Fprint(w, vector())
	}))
	t.Cleanup(srv.Close)
	return srv, &seen
}

func vector(samples ...string) string {
	return `{"status":"success","data":{"resultType":"vector","result":[` + strings.Join(samples, ",") + `]}}`
}

func sample(labels, value string) string {
	return `{"metric":{` + labels + `},"value":[1764931200.000,"` + value + `"]}`
}

func TestQueryRanks(t *testing.T) {
	srv, seen := fakeAPI(t,
		answer{" unless ", vector(sample(`"instance":"n4:9469"`, "19"))},
		answer{"last_over_time(netdrop_stage_drops_total", vector(sample(`"instance":"n1:9469"`, "19"), sample(`"instance":"n2:9469"`, "19"), sample(`"instance":"n3:9469"`, "19"), sample(`"instance":"n4:9469"`, "19"))},
		answer{"increase(netdrop_stage_drops_total", vector(
			sample(`"instance":"n1:9469","stage":"socket-rcvbuf"`, "3600"),
			sample(`"instance":"n3:9469","stage":"netfilter"`, "7200"),
			sample(`"instance":"n3:9469","stage":"nic"`, "5"),
		)},
		answer{"netdrop_findings_expected", vector(sample(`"instance":"n3:9469","stage":"netfilter"`, "1"))},
		answer{"netdrop_findings", vector(
			sample(`"instance":"n2:9469","stage":"ports","severity":"warning"`, "1"),
			sample(`"instance":"n1:9469","stage":"socket-rcvbuf","severity":"info"`, "1"),
			sample(`"instance":"n1:9469","stage":"socket-rcvbuf","severity":"critical"`, "2"),
			sample(`"instance":"n3:9469","stage":"netfilter","severity":"info"`, "1"),
		)},
	)
	at := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	r, err := Query(context.Background(), Options{URL: srv.URL + "/", Range: time.Hour, At: at, Top: 3, Headers: map[string]string{"X-Scope-OrgID": "team-a"}})
	if err != nil {
		t.Fatal(err)
	}
	want := []Row{
		{Node: "n1:9469", Stage: stage.SocketRcvbuf, Drops: 3600, RatePerS: 1, Severity: SeverityCritical, Run: []string{"ssh n1 netdrop diagnose", "ssh n1 netdrop counters --stage socket-rcvbuf --nonzero"}},
		{Node: "n2:9469", Stage: stage.Ports, Severity: SeverityWarning, Run: []string{"ssh n2 netdrop diagnose", "ssh n2 netdrop counters --stage ports --nonzero"}},
		{Node: "n3:9469", Stage: stage.Netfilter, Drops: 7200, RatePerS: 2, Severity: SeverityInfo, Expected: true, Run: []string{"ssh n3 netdrop diagnose", "ssh n3 netdrop counters --stage netfilter --nonzero"}},
	}
	if diff := cmp.Diff(want, r.Rows); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"n4:9469"}, r.Silent); diff != "" {
		t.Errorf("silent nodes (-want +got):\n%s", diff)
	}
	if r.More != 1 || r.NodesWithLoss != 3 || len(r.Nodes) != 4 || r.Worst != SeverityCritical || !r.AtLeastWarning() || r.Source != srv.URL {
		t.Errorf("more %d, nodes with loss %d, nodes %v, worst %q, source %q; want 1, 3, 4 nodes, critical, %s", r.More, r.NodesWithLoss, r.Nodes, r.Worst, r.Source, srv.URL)
	}
	ts := fmt.Sprintf("%d.000", at.Unix())
	wantSeen := []string{
		"count by (instance) (last_over_time(netdrop_stage_drops_total[1h])) @" + ts + " team-a",
		"count by (instance) (last_over_time(netdrop_stage_drops_total[1h])) unless count by (instance) (last_over_time(netdrop_stage_drops_total[5m])) @" + ts + " team-a",
		"sum by (instance, stage) (increase(netdrop_stage_drops_total[1h])) > 0 @" + ts + " team-a",
		"max by (instance, stage, severity) (max_over_time(netdrop_findings[1h])) > 0 @" + ts + " team-a",
		"max by (instance, stage) (max_over_time(netdrop_findings_expected[1h])) > 0 @" + ts + " team-a",
	}
	if diff := cmp.Diff(wantSeen, *seen); diff != "" {
		t.Errorf("queries (-want +got):\n%s", diff)
	}
}

func TestQueryErrors(t *testing.T) {
	down := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return "http://" + ln.Addr().String()
	}()
	empty, _ := fakeAPI(t)
	refused, _ := fakeAPI(t, answer{"netdrop_stage_drops_total", `{"status":"error","errorType":"bad_data","error":"1:27: parse error: unexpected character"}`})
	nolabel, _ := fakeAPI(t, answer{"netdrop_stage_drops_total", vector(sample(``, "3"))})
	html := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, "<html>404 page not found</html>")
	}))
	defer html.Close()
	for _, tc := range []struct {
		name string
		o    Options
		want string
		is   error
	}{
		{"unreachable", Options{URL: down}, "cannot reach " + down, nil},
		{"no series", Options{URL: empty.URL}, "holds no netdrop_stage_drops_total in the 1h before", ErrNoSeries},
		{"no series with selector", Options{URL: empty.URL, Selector: `job="x"`}, `no netdrop_stage_drops_total{job="x"}`, ErrNoSeries},
		{"query refused", Options{URL: refused.URL}, "refused the query count by (instance) (last_over_time(netdrop_stage_drops_total[1h])): bad_data: 1:27: parse error", nil},
		{"not a query API", Options{URL: html.URL}, "answered 404 Not Found with no query API response", nil},
		{"label missing", Options{URL: nolabel.URL, NodeLabel: "node"}, `carry no "node" label`, nil},
		{"bad scheme", Options{URL: "prometheus:9090"}, "want the query API's base URL", nil},
		{"api path", Options{URL: "http://p:9090/api/v1"}, "without /api/v1", nil},
		{"bad label", Options{URL: "http://p:9090", NodeLabel: "a-b"}, "not a label name", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Query(context.Background(), tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("err = %v, want errors.Is %v", err, tc.is)
			}
		})
	}
}

func TestCommandsQuoteTheNode(t *testing.T) {
	for _, tc := range []struct {
		node string
		want string
	}{
		{"10.0.0.7:9469", "ssh 10.0.0.7 netdrop diagnose"},
		{"[2001:db8::1]:9469", "ssh 2001:db8::1 netdrop diagnose"},
		{"worker-3.eu1", "ssh worker-3.eu1 netdrop diagnose"},
		{"a b;rm -rf /", "ssh 'a b;rm -rf /' netdrop diagnose"},
		{"it's", `ssh 'it'\''s' netdrop diagnose`},
	} {
		if got := commands(tc.node, stage.Qdisc)[0]; got != tc.want {
			t.Errorf("commands(%q) = %q, want %q", tc.node, got, tc.want)
		}
	}
	if got := commands("n1", "not-a-stage"); len(got) != 1 {
		t.Errorf("an unknown stage gets counters --stage, which would refuse it: %q", got)
	}
}
