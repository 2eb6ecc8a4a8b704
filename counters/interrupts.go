package counters

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Per-CPU interrupt and softirq counts. They show where receive work lands:
// a NIC whose queue interrupts, or whose NET_RX softirqs, all run on one CPU
// drops there first. Both files are host-wide.

func init() { register(InterruptsSource{}) }

// InterruptsSource reads /proc/interrupts and /proc/softirqs. Interrupt
// counters are named by the IRQ line and its device (Object "41 virtio3-rx")
// with the CPU as the field ("cpu0"); only numbered lines and non-zero counts
// are kept, since a host has hundreds of lines, most of them pinned to one
// CPU, and a delta counts a counter that appears later from zero. Softirq
// counters are Object "cpu0", Field "NET_RX" or "NET_TX".
type InterruptsSource struct{}

// ID implements Source.
func (InterruptsSource) ID() SourceID { return ProcInterrupts }

// Collect implements Source.
func (InterruptsSource) Collect(_ context.Context, r *Reading, s *Snapshot) error {
	fs := r.FS
	var cpus int
	errI := collectCountersFrom(s, ProcInterrupts, r.interruptsText, func(r io.Reader) ([]Counter, error) {
		t, err := parseInterrupts(r)
		cpus = len(t.CPUs)
		return interruptCounters(t), err
	})
	errS := collectCounters(fs, s, ProcSoftirqs, fs.ProcPath("softirqs"), func(r io.Reader) ([]Counter, error) {
		t, err := parseSoftirqs(r)
		return softirqCounters(t), err
	})
	setCPUs(s, cpus)
	if errI != nil && errS != nil {
		s.Fail(ProcSoftirqs, errS)
		return errI
	}
	if errI != nil {
		s.Fail(ProcInterrupts, errI)
	}
	if errS != nil {
		s.Fail(ProcSoftirqs, errS)
	}
	return nil
}

// Interrupts is /proc/interrupts.
type Interrupts struct {
	// CPUs are the CPU numbers of the columns, from the header; offline
	// CPUs have no column.
	CPUs  []int
	Lines []Interrupt
}

// Interrupt is one line of /proc/interrupts.
type Interrupt struct {
	// IRQ is the line's label: "41", or "NMI", "LOC" … for per-CPU
	// architecture counters.
	IRQ string
	// Number is the IRQ number, -1 for the named lines.
	Number int
	// Counts holds one count per column of Interrupts.CPUs. Lines such as
	// ERR and MIS have a single count.
	Counts []uint64
	// Desc is the rest of the line: chip, hardware IRQ, trigger, devices.
	Desc string
	// Name is the device part of Desc ("virtio3-rx", "eth0-TxRx-0"), for
	// numbered lines.
	Name string
}

// ReadInterrupts reads /proc/interrupts, for callers that want every line
// with its devices, such as matching a NIC's queue IRQs.
func ReadInterrupts(fs FS) (Interrupts, error) {
	return readSource(fs, ProcInterrupts, fs.ProcPath("interrupts"), parseInterrupts)
}

// parseInterrupts reads /proc/interrupts (kernel/irq/proc.c,
// show_interrupts): a header of CPU names, then "label: count… description"
// lines. A line with a count that is not a number is reported and skipped.
func parseInterrupts(r io.Reader) (Interrupts, error) {
	var t Interrupts
	buf := getFields()
	defer func() { putFields(buf) }()
	cpus, err := scanCPUTable(r, "IRQ", func(n int, label, rest string, cpus []int) error {
		if strings.ContainsAny(label, " \t") {
			return lineError(n, "no \"IRQ:\" label in %q", label+":"+rest)
		}
		in := Interrupt{IRQ: label, Number: -1}
		if v, err := strconv.Atoi(label); err == nil && v >= 0 {
			in.Number = v
		}
		fields := appendFields(buf[:0], rest)
		buf = fields
		i := 0
		for ; i < len(fields) && i < len(cpus); i++ {
			v, err := strconv.ParseUint(fields[i], 10, 64)
			if err != nil {
				break
			}
			in.Counts = append(in.Counts, v)
		}
		if in.Number >= 0 && len(in.Counts) != len(cpus) {
			return lineError(n, "IRQ %s: %d counts for %d CPUs", label, len(in.Counts), len(cpus))
		}
		if len(in.Counts) == 0 {
			return lineError(n, "%s: no counts", label)
		}
		in.Desc = descAfter(rest, i)
		if in.Number >= 0 {
			in.Name = irqDeviceName(in.Desc)
		}
		t.Lines = append(t.Lines, in)
		return nil
	})
	t.CPUs = cpus
	return t, err
}

// scanCPUTable reads a per-CPU table (/proc/interrupts, /proc/softirqs): a
// header of CPU names, then "LABEL: …" lines handed to row with the CPUs of
// the header. kind names the label in error messages.
func scanCPUTable(r io.Reader, kind string, row func(n int, label, rest string, cpus []int) error) ([]int, error) {
	var cpus []int
	header := false
	err := scanLines(r, func(n int, line string) error {
		if strings.TrimSpace(line) == "" {
			return nil
		}
		if !header {
			header = true
			var err error
			if cpus, err = parseCPUHeader(line); err != nil {
				return lineError(n, "%v", err)
			}
			return nil
		}
		label, rest, ok := strings.Cut(line, ":")
		label = strings.TrimSpace(label)
		if !ok || label == "" {
			return lineError(n, "no \"%s:\" label in %q", kind, line)
		}
		return row(n, label, rest, cpus)
	})
	if !header && err == nil {
		err = lineError(1, "no CPU header line")
	}
	return cpus, err
}

// parseCPUHeader reads "CPU0 CPU1 CPU3" into CPU numbers.
func parseCPUHeader(line string) ([]int, error) {
	var cpus []int
	for _, f := range strings.Fields(line) {
		n, ok := strings.CutPrefix(f, "CPU")
		v, err := strconv.Atoi(n)
		if !ok || err != nil || v < 0 {
			return nil, fmt.Errorf("header column %q is not CPUn", f)
		}
		cpus = append(cpus, v)
	}
	if len(cpus) == 0 {
		return nil, fmt.Errorf("empty CPU header")
	}
	return cpus, nil
}

// descAfter returns s after its first n whitespace-separated words, trimmed.
func descAfter(s string, n int) string {
	for ; n > 0; n-- {
		s = strings.TrimLeft(s, " \t")
		i := strings.IndexAny(s, " \t")
		if i < 0 {
			return ""
		}
		s = s[i:]
	}
	return strings.TrimSpace(s)
}

// irqDeviceName picks the devices out of a description such as
// "PCI-MSIX-0000:00:04.0   1-edge      virtio3-rx". The kernel pads the chip
// and trigger columns and prints the action names after two spaces, joined
// by ", ", so the devices are what follows the last double space.
func irqDeviceName(desc string) string {
	if i := strings.LastIndex(desc, "  "); i >= 0 {
		return strings.TrimSpace(desc[i:])
	}
	if f := strings.Fields(desc); len(f) > 0 {
		return f[len(f)-1]
	}
	return ""
}

func interruptCounters(t Interrupts) []Counter {
	var out []Counter
	for _, in := range t.Lines {
		if in.Number < 0 {
			continue
		}
		obj := in.IRQ
		if in.Name != "" {
			obj += " " + in.Name
		}
		for i, v := range in.Counts {
			if v == 0 {
				continue
			}
			out = append(out, Counter{
				Source: ProcInterrupts, Object: obj, Field: cpuName(t.CPUs[i]),
				Value: v, HostWide: true,
			})
		}
	}
	return out
}

// softirqTable is /proc/softirqs: counts per softirq per CPU.
type softirqTable struct {
	CPUs   []int
	Counts map[string][]uint64
}

// parseSoftirqs reads /proc/softirqs (fs/proc/softirqs.c): a header of CPU
// names, then "NAME: count…" per softirq.
func parseSoftirqs(r io.Reader) (softirqTable, error) {
	t := softirqTable{Counts: map[string][]uint64{}}
	buf := getFields()
	defer func() { putFields(buf) }()
	cpus, err := scanCPUTable(r, "NAME", func(n int, name, rest string, cpus []int) error {
		fields := appendFields(buf[:0], rest)
		buf = fields
		if len(fields) != len(cpus) {
			return lineError(n, "%s: %d counts for %d CPUs", name, len(fields), len(cpus))
		}
		counts := make([]uint64, len(fields))
		for i, f := range fields {
			v, err := strconv.ParseUint(f, 10, 64)
			if err != nil {
				return lineError(n, "%s: %q is not a number", name, f)
			}
			counts[i] = v
		}
		t.Counts[name] = counts
		return nil
	})
	t.CPUs = cpus
	return t, err
}

// softirqCounters keeps the network softirqs.
func softirqCounters(t softirqTable) []Counter {
	var out []Counter
	for _, name := range []string{"NET_RX", "NET_TX"} {
		for i, v := range t.Counts[name] {
			out = append(out, Counter{
				Source: ProcSoftirqs, Object: cpuName(t.CPUs[i]), Field: name,
				Value: v, HostWide: true,
			})
		}
	}
	return out
}
