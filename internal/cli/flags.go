package cli

import (
	"fmt"
	"net"
	"os"
	"slices"
	"strings"

	"github.com/cilium/ebpf/btf"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/netdrop/netdrop/droptrace"
	"github.com/netdrop/netdrop/internal/bench"
	"github.com/netdrop/netdrop/internal/lab"
	"github.com/netdrop/netdrop/sockets"
	"github.com/netdrop/netdrop/stage"
)

// enum is the vocabulary of one flag: its values are checked when the flag
// is parsed, so a typo is a usage error naming the valid values rather than
// an empty result, and shells complete them.
type enum struct {
	// values lists the valid values; it is called when needed, so lists
	// owned by other packages (stages, transports) are never copied here.
	values func() []string
	// list: the flag takes comma-separated values, each checked.
	list bool
	// valid, when set, decides instead of membership in values (for
	// flags whose package accepts aliases the list does not show).
	valid func(string) bool
}

func words(w ...string) func() []string { return func() []string { return w } }

func stageIDs() []string {
	var out []string
	for _, s := range stage.All() {
		out = append(out, string(s.ID))
	}
	return out
}

// enums are the enumerated flags, by command path and flag name. Add a flag
// here when it takes one of a fixed set of values; TestEnumFlagsExist fails
// when an entry no longer names a flag.
var enums = map[string]enum{
	"netdrop color":                     {values: words("auto", "always", "never")},
	"netdrop diagnose trace":            {values: words("auto", "on", "off")},
	"netdrop counters stage":            {values: stageIDs},
	"netdrop trace proto":               {values: words("udp", "tcp", "icmp", "icmpv6")},
	"netdrop trace attach":              {values: words("auto", "tp_btf", "tracepoint")},
	"netdrop probe server proto":        {values: words("udp", "tcp")},
	"netdrop probe client proto":        {values: words("udp", "tcp")},
	"netdrop probe local proto":         {values: words("udp", "tcp")},
	"netdrop probe server trace":        {values: words("auto", "on", "off")},
	"netdrop probe client trace":        {values: words("auto", "on", "off")},
	"netdrop probe local trace":         {values: words("auto", "on", "off")},
	"netdrop bench transport transport": {values: func() []string { return bench.Transports }, list: true},
	"netdrop sockets state":             {values: sockets.StateNames, list: true, valid: func(s string) bool { _, err := sockets.ParseStates(s); return err == nil }},
}

// completions complete flags whose values are not a fixed set, by flag name
// on every command.
var completions = map[string]cobra.CompletionFunc{
	"netns":     completeNetns,
	"expect":    completeExpect,
	"reason":    completeReasons,
	"interface": completeInterfaces,
	"dev":       completeInterfaces,
}

// enumValue checks a value against its enum before handing it to the
// flag's own Value, which keeps its type, default and variable.
type enumValue struct {
	pflag.Value
	e enum
}

func (v enumValue) Set(s string) error {
	parts := []string{s}
	if v.e.list {
		parts = strings.Split(s, ",")
	}
	for _, p := range parts {
		p = strings.TrimSpace(p)
		ok := slices.Contains(v.e.values(), p)
		if v.e.valid != nil {
			ok = v.e.valid(p)
		}
		if !ok {
			return fmt.Errorf("%q is not one of: %s", p, strings.Join(v.e.values(), ", "))
		}
	}
	return v.Value.Set(s)
}

// decorateFlags walks the command tree once: enumerated flags get their
// check and completion, the others by name their completion, and lab run
// completes scenario names.
func decorateFlags(root *cobra.Command) {
	seen := map[*pflag.Flag]bool{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, c := range c.Commands() {
			walk(c)
		}
		visit := func(f *pflag.Flag) {
			if seen[f] {
				return
			}
			if e, ok := enums[c.CommandPath()+" "+f.Name]; ok {
				seen[f] = true
				f.Value = enumValue{f.Value, e}
				_ = c.RegisterFlagCompletionFunc(f.Name, completeEnum(e))
				return
			}
			if fn, ok := completions[f.Name]; ok {
				seen[f] = true
				_ = c.RegisterFlagCompletionFunc(f.Name, fn)
			}
		}
		c.PersistentFlags().VisitAll(visit)
		c.Flags().VisitAll(visit)
		if c.CommandPath() == "netdrop lab run" {
			c.ValidArgsFunction = completeScenarios
		}
	}
	walk(root)
}

// completeEnum completes one value, or the last of a comma-separated list
// after the values already given.
func completeEnum(e enum) cobra.CompletionFunc {
	return func(_ *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if !e.list {
			return e.values(), cobra.ShellCompDirectiveNoFileComp
		}
		done, last := "", toComplete
		if i := strings.LastIndex(toComplete, ","); i >= 0 {
			done, last = toComplete[:i+1], toComplete[i+1:]
		}
		given := strings.Split(done, ",")
		var out []cobra.Completion
		for _, v := range e.values() {
			if strings.HasPrefix(v, last) && !slices.Contains(given, v) {
				out = append(out, done+v)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
	}
}

// completeExpect offers the stages of --expect STAGE[:MATCH]; the match is
// free text.
func completeExpect(_ *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if strings.Contains(toComplete, ":") {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return stageIDs(), cobra.ShellCompDirectiveNoFileComp
}

// netnsDir is where `ip netns add` mounts named namespaces.
const netnsDir = "/run/netns"

// completeNetns offers the named namespaces; PATH and pid:N forms are
// typed by hand.
func completeNetns(_ *cobra.Command, _ []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
	ents, err := os.ReadDir(netnsDir)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []cobra.Completion
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// completeInterfaces offers this namespace's interfaces.
func completeInterfaces(_ *cobra.Command, _ []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []cobra.Completion
	for _, i := range ifs {
		out = append(out, i.Name)
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// completeReasons offers the drop reasons of the running kernel, read from
// its BTF like the tracer does (/sys/kernel/btf/vmlinux is world-readable).
func completeReasons(_ *cobra.Command, _ []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	r, err := droptrace.ReasonsFromBTF(spec)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return r.Names(), cobra.ShellCompDirectiveNoFileComp
}

// completeScenarios offers the lab's scenarios not yet named, and all.
func completeScenarios(_ *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
	var out []cobra.Completion
	if len(args) == 0 {
		out = append(out, cobra.CompletionWithDesc("all", "every scenario"))
	}
	for _, s := range lab.List() {
		if !slices.Contains(args, s.Name) && !slices.Contains(args, "all") {
			out = append(out, cobra.CompletionWithDesc(s.Name, "breaks "+string(s.Stage)))
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}
