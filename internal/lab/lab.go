// Package lab builds packet-loss faults on purpose and checks that netdrop
// finds them.
//
// Each scenario builds a small network of two network namespaces joined by a
// veth pair, injects one known fault (a DROP rule, a tiny buffer, a full
// table), drives bounded traffic through it, and runs netdrop's own diagnosis
// inside the namespace where the loss happens. The scenario passes when the
// top finding names the stage the scenario breaks. The lab is at once the
// demo a newcomer runs to watch netdrop work and netdrop's end-to-end test.
//
// Everything is done natively through netlink, nftables and sockets opened
// inside the namespaces: the lab needs no ip, tc or iptables binary. Global
// settings a scenario changes are journalled under StateDir before they are
// changed, so that a run killed with SIGKILL is repaired by the next one.
//
// Adding a scenario is adding one file: a Scenario value registered in
// init, whose Inject builds the fault on the Env (Env.socket, addInputRules,
// Node.Sysctl, Env.SetGlobal, netlink through Node.Netlink) and returns a
// Traffic function bounded in packets and time. Register every socket and
// change with Env so teardown undoes it, and add the scenario's reference
// check (the kernel's own tool that proves the fault happened) to
// lab_test.go.
//
// The lab does not diagnose (diagnose/ does) and does not print (internal/cli
// does).
package lab

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/netdrop/netdrop/stage"
)

// Prefix starts the name of every namespace and interface the lab creates,
// so that leftovers of a killed run can be found and removed.
const Prefix = "ndlab-"

// Side names one end of the lab's veth pair.
type Side int

const (
	// Receiver is the namespace traffic is sent to; most faults live there.
	Receiver Side = iota
	// Sender is the namespace traffic comes from (qdisc, ports).
	Sender
	// Host is the namespace the lab runs in. Only faults whose evidence
	// exists nowhere else are diagnosed there: the neighbour tables'
	// statistics are kept for all namespaces together and shown only in
	// the initial one.
	Host
)

func (s Side) String() string {
	switch s {
	case Sender:
		return "sender"
	case Host:
		return "host"
	}
	return "receiver"
}

// Traffic drives the scenario's traffic once the fault is in place. It must
// be bounded in packets and in time, and return early when ctx ends.
type Traffic func(ctx context.Context) error

// Scenario is one reproducible fault: data plus the function that injects
// it. Adding a scenario means adding one file that calls register in init.
type Scenario struct {
	// Name is what users type: "udp-rcvbuf".
	Name string
	// Stage is the stage the fault breaks: the top finding must name it.
	Stage stage.ID
	// Story is one line for `netdrop lab list`.
	Story string
	// DiagnoseOn says in which namespace the diagnosis runs.
	DiagnoseOn Side
	// HostWide says the stage's evidence is host-wide (softnet_stat counts
	// every namespace's backlog drops). For other scenarios the verdict
	// skips findings marked host-wide: they describe the rest of the host,
	// which the lab neither controls nor breaks, and a busy host must not
	// fail a scenario about one namespace.
	HostWide bool
	// Expect declares the scenario's drops intended, as a user would
	// with diagnose --expect STAGE[:MATCH]. The verdict then wants the
	// finding at Stage marked expected, as information, with its drops
	// counted, and nothing of the scenario's namespace at warning or
	// above: the drops stay visible without setting the exit code.
	Expect []string
	// Inject puts the fault in place on a freshly built Env (rules, sysctls,
	// sockets, qdiscs) and returns the traffic that makes packets hit it.
	// Whatever it opens or changes it registers with Env so teardown undoes
	// it.
	Inject func(ctx context.Context, e *Env) (Traffic, error)
}

var scenarios = map[string]Scenario{}

// register adds a scenario; each scenario file calls it from init.
func register(s Scenario) {
	if _, dup := scenarios[s.Name]; dup {
		panic("lab: scenario registered twice: " + s.Name)
	}
	if !stage.Valid(s.Stage) {
		panic(fmt.Sprintf("lab: scenario %s expects unknown stage %q", s.Name, s.Stage))
	}
	scenarios[s.Name] = s
}

// List returns every scenario in the order of the packet path of the stage
// it breaks, then by name.
func List() []Scenario {
	out := make([]Scenario, 0, len(scenarios))
	for _, s := range scenarios {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := stage.Index(out[i].Stage), stage.Index(out[j].Stage)
		if a != b {
			return a < b
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// Select resolves names as a user typed them: scenario names, or "all".
// Unknown names are an error that lists the known ones.
func Select(names []string) ([]Scenario, error) {
	if len(names) == 0 {
		return nil, fmt.Errorf("name at least one scenario, or all (see netdrop lab list)")
	}
	var out []Scenario
	seen := map[string]bool{}
	for _, n := range names {
		if n == "all" {
			for _, s := range List() {
				if !seen[s.Name] {
					seen[s.Name] = true
					out = append(out, s)
				}
			}
			continue
		}
		s, ok := scenarios[n]
		if !ok {
			var known []string
			for _, s := range List() {
				known = append(known, s.Name)
			}
			return nil, fmt.Errorf("unknown scenario %q (known: %s, all)", n, strings.Join(known, ", "))
		}
		if !seen[n] {
			seen[n] = true
			out = append(out, s)
		}
	}
	return out, nil
}
