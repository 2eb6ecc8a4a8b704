package deploy

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

const dashboardFile = "grafana/netdrop-dashboard.json"

// dashboard is the part of a Grafana dashboard these checks read.
type dashboard struct {
	Panels []dashboardPanel `json:"panels"`
}

type dashboardPanel struct {
	ID      int    `json:"id"`
	Type    string `json:"type"`
	Title   string `json:"title"`
	GridPos struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		RefID      string `json:"refId"`
		Expr       string `json:"expr"`
		Datasource struct {
			UID string `json:"uid"`
		} `json:"datasource"`
	} `json:"targets"`
}

// netdropSelector matches a netdrop_ series selector with its matchers.
var netdropSelector = regexp.MustCompile(`\bnetdrop_[a-z0-9_]+(\{[^}]*\})?`)

// TestDashboard checks what Grafana does not at import: panel ids are
// unique and panels neither overlap nor leave the 24 columns; every query
// goes to the chosen data source, is PromQL that Prometheus parses
// (promtool), and filters by the $job and $instance variables, so the
// dashboard's node picker applies to every panel; and the per-pod panel
// sums --all-netns drops by pod. That each netdrop_ family queried is one
// the exporter serves is internal/exporter's TestDeployReferencesExist.
func TestDashboard(t *testing.T) {
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s is not JSON: %v", dashboardFile, err)
	}
	ids := map[int]string{}
	var rules []monitoringv1.Rule
	perPod := false
	for i, p := range d.Panels {
		if other, ok := ids[p.ID]; ok {
			t.Errorf("panels %q and %q share id %d", other, p.Title, p.ID)
		}
		ids[p.ID] = p.Title
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v outside the 24 columns", p.Title, g)
		}
		for _, q := range d.Panels[:i] {
			h := q.GridPos
			if g.X < h.X+h.W && h.X < g.X+g.W && g.Y < h.Y+h.H && h.Y < g.Y+g.H {
				t.Errorf("panels %q %+v and %q %+v overlap", p.Title, g, q.Title, h)
			}
		}
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			if tg.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q query %s: data source %q, want the dashboard's ${datasource}", p.Title, tg.RefID, tg.Datasource.UID)
			}
			sels := netdropSelector.FindAllStringSubmatch(tg.Expr, -1)
			if len(sels) == 0 {
				t.Errorf("panel %q query %s queries no netdrop_ metric: %s", p.Title, tg.RefID, tg.Expr)
			}
			for _, m := range sels {
				if !strings.Contains(m[1], `job=~"$job"`) || !strings.Contains(m[1], `instance=~"$instance"`) {
					t.Errorf("panel %q query %s: %s does not filter by $job and $instance", p.Title, tg.RefID, m[0])
				}
			}
			// Grafana's variables, as Prometheus would get them.
			expr := strings.NewReplacer("$__rate_interval", "5m", "$job", ".*", "$instance", ".*").Replace(tg.Expr)
			rules = append(rules, monitoringv1.Rule{Record: fmt.Sprintf("dashboard:panel_%d_%s", p.ID, tg.RefID), Expr: intstr.FromString(expr)})
			if strings.Contains(tg.Expr, "netdrop_netns_stage_drops_total") && regexp.MustCompile(`by \(pod_namespace, pod\)`).MatchString(tg.Expr) {
				perPod = true
			}
		}
	}
	if !perPod {
		t.Error("no panel sums netdrop_netns_stage_drops_total by pod_namespace and pod")
	}
	promtoolCheckRules(t, monitoringv1.PrometheusRuleSpec{Groups: []monitoringv1.RuleGroup{{Name: "dashboard", Rules: rules}}})
}
