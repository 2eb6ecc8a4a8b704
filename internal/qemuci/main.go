// Command qemuci judges a run of the test guest that .ci/qemu-kernel boots:
// it reads the guest's serial console, splits it into the steps the guest's
// /init ran (between ND-STEP-BEGIN and ND-STEP-END markers), reads the
// verbose output of the Go test binaries and of `netdrop lab run` in each,
// and exits non-zero when a step is missing or failed, a test failed, or a
// test skipped without saying why. It prints the counts per step and every
// skip with its reason, so a CI log shows what the other kernel could not
// run and why.
//
// It is a program of the CI, not of netdrop: it lives under internal/ so the
// module's vet, staticcheck and tests cover it.
//
//	go run ./internal/qemuci -steps counters,droptrace,sockets,diagnose,lab console.txt
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

func main() {
	steps := flag.String("steps", "", "comma-separated steps the guest must have run")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: qemuci -steps a,b,c CONSOLE")
		os.Exit(2)
	}
	f, err := os.Open(flag.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, "qemuci:", err)
		os.Exit(2)
	}
	defer f.Close()
	run, err := parse(f)
	if err != nil {
		fmt.Fprintln(os.Stderr, "qemuci:", err)
		os.Exit(2)
	}
	var want []string
	if *steps != "" {
		want = strings.Split(*steps, ",")
	}
	problems := run.judge(want)
	run.print(os.Stdout)
	if len(problems) > 0 {
		fmt.Println("\nguest FAILED:")
		for _, p := range problems {
			fmt.Println("  " + p)
		}
		for _, s := range run.Steps {
			if !s.ok() {
				fmt.Printf("\n--- console of step %s ---\n%s", s.Name, strings.Join(s.Lines, "\n"))
				fmt.Println()
			}
		}
		os.Exit(1)
	}
}

// Run is one boot of the guest as its console showed it.
type Run struct {
	Kernel string // uname -r in the guest
	Done   bool   // the guest reached the end of its steps
	Steps  []*Step
	// Missing lists modules the guest's /init could not load.
	Missing []string
	// Facts are what the guest's /init found about its kernel (BTF, the
	// tracepoint's fields, the number of drop reasons), for the log.
	Facts []string
}

// Step is one command the guest ran.
type Step struct {
	Name    string
	Ended   bool
	RC      int
	Seconds int
	Lines   []string
	Tests   []*Test // from go test -v output, in order of their result
	// Scenarios are `netdrop lab run` verdicts: name -> passed.
	Scenarios map[string]bool
}

func (s *Step) ok() bool {
	if !s.Ended || s.RC != 0 {
		return false
	}
	for _, t := range s.Tests {
		if t.Result == "FAIL" || (t.Result == "SKIP" && len(t.Output) == 0) {
			return false
		}
	}
	return true
}

// Test is one test or subtest with its result and the lines it printed.
type Test struct {
	Name   string
	Result string // PASS, FAIL or SKIP
	Output []string
}

var (
	beginRE  = regexp.MustCompile(`^ND-STEP-BEGIN (\S+)`)
	endRE    = regexp.MustCompile(`^ND-STEP-END (\S+) rc=(\d+) seconds=(\d+)`)
	headRE   = regexp.MustCompile(`^=== (RUN|CONT|NAME|PAUSE)\s+(\S+)`)
	resultRE = regexp.MustCompile(`^\s*--- (PASS|FAIL|SKIP): (\S+) \(`)
	labRE    = regexp.MustCompile(`^(PASS|FAIL) ([a-z0-9-]+): expected`)
	kmsgRE   = regexp.MustCompile(`^\[\s*\d+\.\d+\] `)
	// ansiRE matches colour escapes: the console is a terminal, so the
	// lab colours its verdicts.
	ansiRE = regexp.MustCompile(`\x1b\[[0-9;]*m`)
)

// parse reads a console log. Output lines of a test are the lines between
// its "=== RUN/CONT/NAME" header and the next header or result, as go test
// -v streams them; kernel messages ("[ 12.34] …") are not output of a test.
func parse(r io.Reader) (*Run, error) {
	run := &Run{}
	var cur *Step
	var current string
	output := map[string][]string{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := ansiRE.ReplaceAllString(strings.TrimRight(sc.Text(), "\r"), "")
		if i := strings.Index(line, "ND-KERNEL "); i > 0 {
			// The first marker comes glued to the firmware's escapes.
			line = line[i:]
		}
		switch {
		case strings.HasPrefix(line, "ND-KERNEL "):
			run.Kernel = strings.Fields(line)[1]
			continue
		case strings.HasPrefix(line, "ND-FACT "):
			run.Facts = append(run.Facts, strings.TrimPrefix(line, "ND-FACT "))
			continue
		case strings.HasPrefix(line, "ND-MODULE-MISSING "):
			run.Missing = append(run.Missing, strings.TrimPrefix(line, "ND-MODULE-MISSING "))
			continue
		case strings.HasPrefix(line, "ND-ALL-DONE"):
			run.Done = true
			cur = nil
			continue
		}
		if m := beginRE.FindStringSubmatch(line); m != nil {
			cur = &Step{Name: m[1], Scenarios: map[string]bool{}}
			run.Steps = append(run.Steps, cur)
			current = ""
			output = map[string][]string{}
			continue
		}
		if m := endRE.FindStringSubmatch(line); m != nil && cur != nil && cur.Name == m[1] {
			cur.Ended = true
			cur.RC, _ = strconv.Atoi(m[2])
			cur.Seconds, _ = strconv.Atoi(m[3])
			cur = nil
			continue
		}
		if cur == nil {
			continue
		}
		cur.Lines = append(cur.Lines, line)
		if kmsgRE.MatchString(line) {
			continue
		}
		if m := headRE.FindStringSubmatch(line); m != nil {
			current = m[2]
			continue
		}
		if m := resultRE.FindStringSubmatch(line); m != nil {
			cur.Tests = append(cur.Tests, &Test{Name: m[2], Result: m[1], Output: output[m[2]]})
			current = ""
			continue
		}
		if m := labRE.FindStringSubmatch(line); m != nil {
			cur.Scenarios[m[2]] = m[1] == "PASS"
			continue
		}
		if current != "" && strings.TrimSpace(line) != "" {
			output[current] = append(output[current], strings.TrimSpace(line))
		}
	}
	return run, sc.Err()
}

// judge lists what makes the run a failure; want are the steps that must
// have run.
func (r *Run) judge(want []string) []string {
	var out []string
	if !r.Done {
		out = append(out, "the guest did not reach the end of its steps (crash, panic or timeout)")
	}
	seen := map[string]bool{}
	for _, s := range r.Steps {
		seen[s.Name] = true
		if !s.Ended {
			out = append(out, fmt.Sprintf("step %s did not end", s.Name))
			continue
		}
		if s.RC != 0 {
			out = append(out, fmt.Sprintf("step %s exited %d", s.Name, s.RC))
		}
		if len(s.Tests) == 0 && len(s.Scenarios) == 0 {
			out = append(out, fmt.Sprintf("step %s reported no test or scenario", s.Name))
		}
		for _, t := range s.Tests {
			switch {
			case t.Result == "FAIL":
				out = append(out, fmt.Sprintf("%s: %s failed", s.Name, t.Name))
			case t.Result == "SKIP" && len(t.Output) == 0:
				out = append(out, fmt.Sprintf("%s: %s skipped without a reason", s.Name, t.Name))
			}
		}
		for name, ok := range s.Scenarios {
			if !ok {
				out = append(out, fmt.Sprintf("%s: scenario %s failed", s.Name, name))
			}
		}
	}
	for _, w := range want {
		if !seen[w] {
			out = append(out, fmt.Sprintf("step %s never ran", w))
		}
	}
	sort.Strings(out)
	return out
}

// Count is the number of tests (subtests included) with result res.
func (s *Step) Count(res string) int {
	n := 0
	for _, t := range s.Tests {
		if t.Result == res {
			n++
		}
	}
	return n
}

func (r *Run) print(w io.Writer) {
	fmt.Fprintf(w, "guest kernel %s\n", r.Kernel)
	for _, f := range r.Facts {
		fmt.Fprintf(w, "  %s\n", f)
	}
	if len(r.Missing) > 0 {
		fmt.Fprintf(w, "modules not loaded: %s\n", strings.Join(r.Missing, " "))
	}
	var pass, skip, fail, secs int
	for _, s := range r.Steps {
		pass += s.Count("PASS")
		skip += s.Count("SKIP")
		fail += s.Count("FAIL")
		secs += s.Seconds
		if len(s.Scenarios) > 0 {
			ok := 0
			for _, p := range s.Scenarios {
				if p {
					ok++
				}
			}
			fmt.Fprintf(w, "%-10s rc=%d %4ds  %d/%d scenarios passed\n", s.Name, s.RC, s.Seconds, ok, len(s.Scenarios))
			continue
		}
		fmt.Fprintf(w, "%-10s rc=%d %4ds  %d passed, %d skipped, %d failed\n", s.Name, s.RC, s.Seconds,
			s.Count("PASS"), s.Count("SKIP"), s.Count("FAIL"))
	}
	fmt.Fprintf(w, "all steps: %d passed, %d skipped, %d failed in %ds\n", pass, skip, fail, secs)
	for _, s := range r.Steps {
		for _, t := range s.Tests {
			if t.Result != "SKIP" {
				continue
			}
			reason := "(no reason given)"
			if len(t.Output) > 0 {
				reason = t.Output[len(t.Output)-1]
			}
			fmt.Fprintf(w, "skip %s %s: %s\n", s.Name, t.Name, reason)
		}
	}
}
