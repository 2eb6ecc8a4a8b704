package exporter

import (
	"strings"
	"testing"
)

// podsLabelled counts the pods that per-namespace series of a /metrics
// text name: distinct pod_namespace/pod pairs with a pod, over
// netdrop_netns_stage_drops_total and netdrop_netns_findings.
func podsLabelled(text string) int {
	pods := map[string]bool{}
	for _, l := range strings.Split(text, "\n") {
		if !strings.HasPrefix(l, "netdrop_netns_stage_drops_total{") && !strings.HasPrefix(l, "netdrop_netns_findings{") {
			continue
		}
		labels := l[strings.IndexByte(l, '{')+1:]
		labels = labels[:strings.LastIndexByte(labels, '}')]
		var ns, pod string
		for _, kv := range splitLabels(labels) {
			k, v, _ := strings.Cut(kv, "=")
			v = strings.Trim(v, `"`)
			switch k {
			case "pod_namespace":
				ns = v
			case "pod":
				pod = v
			}
		}
		if pod != "" {
			pods[ns+"/"+pod] = true
		}
	}
	return len(pods)
}

// splitLabels splits a label list at the commas outside quoted values.
func splitLabels(s string) []string {
	var out []string
	quoted, start := false, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			quoted = !quoted
		case ',':
			if !quoted {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}

func TestPodsLabelled(t *testing.T) {
	tests := []struct {
		name, text string
		want       int
	}{
		{"no series", "netdrop_netns_count 201\nnetdrop_scrape_collector_success{collector=\"netns\"} 1\n", 0},
		{"one pod, two series", `netdrop_netns_stage_drops_total{container="",netns="a",pod="web-0",pod_namespace="shop",stage="no-socket"} 4
netdrop_netns_findings{container="",netns="a",pod="web-0",pod_namespace="shop",severity="warning",stage="no-socket"} 1
`, 1},
		{"same name, two namespaces", `netdrop_netns_stage_drops_total{container="",netns="a",pod="web-0",pod_namespace="shop",stage="no-socket"} 4
netdrop_netns_stage_drops_total{container="",netns="b",pod="web-0",pod_namespace="test",stage="no-socket"} 4
`, 2},
		{"a namespace without a pod", `netdrop_netns_stage_drops_total{container="",netns="host",pod="",pod_namespace="",stage="no-socket"} 4
`, 0},
		{"a comma in a value", `netdrop_netns_findings{container="a,b",netns="x",pod="p",pod_namespace="n",severity="info",stage="ip"} 1
`, 1},
		{"other families ignored", `netdrop_findings{severity="warning",stage="no-socket"} 1
netdrop_scrape_collector_success{collector="netns"} 1
`, 0},
	}
	for _, tt := range tests {
		if got := podsLabelled(tt.text); got != tt.want {
			t.Errorf("%s: podsLabelled = %d, want %d", tt.name, got, tt.want)
		}
	}
}
