package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/netdrop/netdrop/counters"
	"github.com/netdrop/netdrop/diagnose"
	"github.com/netdrop/netdrop/internal/netnsmap"
	"github.com/netdrop/netdrop/internal/report"
	"github.com/netdrop/netdrop/stage"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

// rankFixture is a map of three namespaces as netnsmap makes it from
// /proc and CRI, without the kernel.
func rankFixture(t *testing.T) *netnsmap.Map {
	t.Helper()
	return &netnsmap.Map{Namespaces: []*netnsmap.Namespace{
		{Inode: 1, Host: true, Self: true, NumProcesses: 40, Processes: []netnsmap.Process{{PID: 1, Comm: "init"}, {PID: 7, Comm: "sshd"}, {PID: 9, Comm: "cron"}, {PID: 11, Comm: "getty"}}},
		{Inode: 2, Mounts: []string{"/run/netns/cni-1"}, NumProcesses: 2, Processes: []netnsmap.Process{{PID: 100, Comm: "pause"}, {PID: 101, Comm: "nginx"}},
			Containers: []netnsmap.Container{{ID: strings.Repeat("a", 64), PodUID: "u1"}, {ID: strings.Repeat("b", 64), Name: "web", PodUID: "u1"}},
			Pods:       []netnsmap.Pod{{Namespace: "shop", Name: "web-0", UID: "u1", SandboxID: strings.Repeat("a", 64)}}},
		{Inode: 3, NumProcesses: 1, Processes: []netnsmap.Process{{PID: 200, Comm: "redis"}},
			Containers: []netnsmap.Container{{ID: strings.Repeat("c", 64), Runtime: netnsmap.RuntimeDocker}}},
	}}
}

func finding(st stage.ID, sev diagnose.Severity, drops uint64, hostWide bool) diagnose.Finding {
	return diagnose.Finding{Stage: st, Severity: sev, Drops: drops, HostWide: hostWide, Title: string(st)}
}

func TestRankNetns(t *testing.T) {
	m := rankFixture(t)
	each := []diagnose.Each{
		{Netns: counters.CurrentNetns(), Report: &diagnose.Report{Netns: counters.CurrentNetns().String(), Findings: []diagnose.Finding{finding(stage.Softirq, diagnose.Warning, 500, false)}}},
		// The pod: critical, and a host-wide finding that is the host's.
		{Netns: counters.NetnsAtPath("/run/netns/cni-1"), Report: &diagnose.Report{Netns: "/run/netns/cni-1", Findings: []diagnose.Finding{
			finding(stage.SocketRcvbuf, diagnose.Critical, 30, false), finding(stage.SocketRcvbuf, diagnose.Warning, 20, false),
			finding(stage.Softirq, diagnose.Warning, 500, true)}}},
		{Netns: counters.NetnsOfPID(200), Err: errString("netns \"pid:200\": no such namespace")},
	}
	a := rankNetns(m, each)
	type row struct {
		Rank   int
		Netns  string
		Worst  string
		Drops  uint64
		Titles []string
		Error  string
	}
	var got []row
	for _, d := range a.Namespaces {
		r := row{Rank: d.Rank, Netns: d.Owner.Netns, Worst: d.Worst, Drops: d.Drops, Error: d.Error}
		if d.Report != nil {
			for _, f := range d.Report.Findings {
				r.Titles = append(r.Titles, f.Title)
				if f.Owner != d.Owner {
					t.Errorf("%s: finding %q not labelled with its namespace's owner", r.Netns, f.Title)
				}
			}
		}
		got = append(got, r)
	}
	want := []row{
		{Rank: 1, Netns: "cni-1", Worst: "critical", Drops: 30, Titles: []string{"socket-rcvbuf", "socket-rcvbuf"}},
		{Rank: 2, Netns: "host", Worst: "warning", Drops: 500, Titles: []string{"softirq"}},
		{Rank: 3, Netns: "net:[3]", Error: `netns "pid:200": no such namespace`},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("rankNetns (-want +got):\n%s", diff)
	}
	pod := a.Namespaces[0].Owner
	wantOwner := &diagnose.Owner{Netns: "cni-1", Inode: 2, PodNamespace: "shop", Pod: "web-0", Containers: []string{"web"},
		Processes: []string{"pause[100]", "nginx[101]"}, ProcessCount: 2}
	if diff := cmp.Diff(wantOwner, pod); diff != "" {
		t.Errorf("pod owner (-want +got):\n%s", diff)
	}
	if sev, ok := a.worst(); !ok || sev != diagnose.Critical {
		t.Errorf("worst = %v, %v", sev, ok)
	}
	var b bytes.Buffer
	if err := renderAllNetns(&b, a, report.Style{}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"#1 critical, 30 drops — netns cni-1 · pod shop/web-0 · containers web · processes pause[100], nginx[101]\n",
		"#2 warning, 500 drops — netns host · processes init[1], sshd[7], cron[9], … (40)\n",
		"not diagnosed: netns net:[3] · containers cccccccccccc · processes redis[200]: netns \"pid:200\": no such namespace\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("text lacks %q:\n%s", want, out)
		}
	}
	if strings.Index(out, "#1") > strings.Index(out, "#2") {
		t.Errorf("blocks out of rank order:\n%s", out)
	}
}

type errString string

func (e errString) Error() string { return string(e) }

// An unknown pod is an error that says where netdrop looked.
func TestDiagnosePodNotFound(t *testing.T) {
	var out, errb bytes.Buffer
	code := Main(context.Background(), []string{"diagnose", "--pod", "shop/absent", "--once", "--cri-socket", "/nonexistent/cri.sock"}, &out, &errb)
	if code != ExitError {
		t.Errorf("exit %d, want 2", code)
	}
	if !strings.Contains(errb.String(), "pod shop/absent") {
		t.Errorf("stderr = %q, want the pod named", errb.String())
	}
}

// A report labelled with its owner is still what docs/diagnose.schema.json
// describes, as each block of --all-netns --json and diagnose --pod print it.
func TestOwnerMatchesSchema(t *testing.T) {
	f, err := os.Open("../../docs/diagnose.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("diagnose.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("diagnose.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	m := rankFixture(t)
	r := diagnose.Analyze(&counters.Snapshot{}, &counters.Snapshot{Netns: "/run/netns/cni-1"}, 0)
	r.SchemaVersion = diagnose.SchemaVersion
	r.Findings = []diagnose.Finding{finding(stage.SocketRcvbuf, diagnose.Critical, 30, false)}
	r.SetOwner(ownerOf(m.Namespaces[1]))
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if err := sch.Validate(inst); err != nil {
		t.Errorf("%v\n%s", err, b)
	}
}
