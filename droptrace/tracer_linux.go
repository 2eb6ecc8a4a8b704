//go:build linux

package droptrace

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"

	"github.com/netdrop/netdrop/internal/memlock"
	"github.com/netdrop/netdrop/internal/netns"
)

// Tracer is an attached drop tracer. Close it to detach.
type Tracer struct {
	opts    Options
	attach  string
	reasons *Reasons
	syms    *Symbols
	objs    objects
	prog    *ebpf.Program
	link    link.Link
	names   *ifnames

	ring   *ringbuf.Reader
	events chan Event
	done   chan struct{}
	wg     sync.WaitGroup

	// boot is the wall-clock time of CLOCK_MONOTONIC zero, to date events.
	boot time.Time

	mu     sync.Mutex
	stacks map[int32][]string
	closed bool
}

// objects are the kernel objects of one tracer.
type objects struct {
	Prog    *ebpf.Program `ebpf:"kfree_skb"`
	Drops   *ebpf.Map     `ebpf:"drops"`
	Flows   *ebpf.Map     `ebpf:"flows"`
	Stacks  *ebpf.Map     `ebpf:"stacks"`
	Samples *ebpf.Map     `ebpf:"stack_samples"`
	Events  *ebpf.Map     `ebpf:"events"`
	Stats   *ebpf.Map     `ebpf:"stats"`
}

func (o *objects) maps() []*ebpf.Map {
	return []*ebpf.Map{o.Drops, o.Flows, o.Stacks, o.Samples, o.Events, o.Stats}
}

func (o *objects) close() {
	o.Prog.Close()
	for _, m := range o.maps() {
		m.Close()
	}
}

// Start loads and attaches the tracer. It returns ErrPermission (wrapped)
// without the privileges, ErrNotSupported when the kernel has no reachable
// kfree_skb tracepoint. ctx bounds only the start; call Close to detach.
func Start(ctx context.Context, opts Options) (*Tracer, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := checkPrivileges(); err != nil {
		return nil, err
	}
	l4, err := protoNumber(opts.Proto)
	if err != nil {
		return nil, err
	}
	if opts.FlowsPerRow <= 0 {
		opts.FlowsPerRow = 5
	}
	if opts.RingSize == 0 {
		opts.RingSize = 4 << 20
	}
	if opts.RingSize < os.Getpagesize() || opts.RingSize&(opts.RingSize-1) != 0 {
		return nil, fmt.Errorf("ring size %d: want a power of two of at least a page", opts.RingSize)
	}
	if err := memlock.Raise(); err != nil {
		return nil, fmt.Errorf("raising memlock limit: %w", err)
	}

	// Decide the attach mode: feature probes, not kernel versions. In auto
	// mode a kernel with BTF gets tp_btf; should that fail for any reason
	// but privileges, the classic tracepoint is tried before giving up.
	_, btfErr := btf.LoadKernelSpec()
	switch opts.Attach {
	case "", "auto":
		if btfErr != nil {
			return start(opts, l4, "tracepoint")
		}
		t, err := start(opts, l4, "tp_btf")
		var ke *kernelError
		if err == nil || errors.Is(err, ErrPermission) || !(errors.As(err, &ke) || errors.Is(err, ErrNotSupported)) {
			return t, err // success, or an error the other mode shares
		}
		if _, ferr := readKfreeSkbFormat(opts.Tracefs); ferr != nil {
			return nil, err
		}
		t, err2 := start(opts, l4, "tracepoint")
		if err2 != nil {
			return nil, fmt.Errorf("tp_btf: %w; classic tracepoint: %w", err, err2)
		}
		return t, nil
	case "tp_btf", "tracepoint":
		return start(opts, l4, opts.Attach)
	}
	return nil, fmt.Errorf("unknown attach mode %q (want auto, tp_btf or tracepoint)", opts.Attach)
}

// start loads and attaches in one mode: what the kernel offers, the
// program for it, its configuration, then load, attach and (with
// Options.Events) the ring reader.
func start(opts Options, l4 uint8, mode string) (*Tracer, error) {
	k, err := readKernel(opts.Tracefs, mode)
	if err != nil {
		return nil, err
	}
	t := &Tracer{opts: opts, attach: mode, stacks: map[int32][]string{}, names: newIfnames()}
	if t.reasons, err = k.reasons(); err != nil {
		return nil, err
	}
	if t.syms, err = KernelSymbols(); err != nil {
		return nil, fmt.Errorf("symbolizing drop locations: %w", err)
	}
	spec, err := loadDroptrace()
	if err != nil {
		return nil, fmt.Errorf("loading embedded bpf object: %w", err)
	}
	if err := selectProgram(spec, k, mode); err != nil {
		return nil, err
	}
	if err := configure(spec, opts, l4, t.reasons); err != nil {
		return nil, err
	}
	if err := t.load(spec, k.btf); err != nil {
		return nil, err
	}
	if opts.Events {
		if err := t.startEvents(); err != nil {
			t.Close()
			return nil, err
		}
	}
	return t, nil
}

// kernelInfo is what start reads about the running kernel before it loads
// anything.
type kernelInfo struct {
	btf    *btf.Spec // nil without kernel BTF
	format *Format   // tracefs format of skb:kfree_skb; nil when unreadable
}

// readKernel reads the kernel's BTF and the tracepoint's format file, and
// says why mode cannot work when what it needs is missing.
func readKernel(tracefs, mode string) (kernelInfo, error) {
	var k kernelInfo
	kspec, btfErr := btf.LoadKernelSpec()
	if btfErr == nil {
		k.btf = kspec
	}
	f, ferr := readKfreeSkbFormat(tracefs)
	if ferr == nil {
		k.format = &f
	}
	switch {
	case mode == "tracepoint" && ferr != nil && btfErr != nil:
		return k, fmt.Errorf("%w: no kernel BTF (%v) and no tracefs format for skb:kfree_skb (%v); mount tracefs: mount -t tracefs nodev /sys/kernel/tracing", ErrNotSupported, btfErr, ferr)
	case mode == "tracepoint" && ferr != nil:
		return k, fmt.Errorf("%w: classic tracepoint: %w", ErrNotSupported, ferr)
	case mode == "tp_btf" && btfErr != nil:
		return k, fmt.Errorf("%w: tp_btf needs kernel BTF: %w", ErrNotSupported, btfErr)
	}
	return k, nil
}

// reasons names drops: from BTF first, else the format file's symbol
// table; nil (no error) on kernels without reasons.
func (k kernelInfo) reasons() (*Reasons, error) {
	var (
		r   *Reasons
		err error
	)
	if k.btf != nil {
		r, err = kernelReasons(k.btf)
	}
	if r == nil && k.format != nil {
		r, err = ReasonsFromFormat(*k.format)
	}
	if r == nil && err != nil && !errors.Is(err, ErrNoReasons) {
		return nil, fmt.Errorf("reading drop reasons: %w", err)
	}
	return r, nil
}

// selectProgram keeps the one program of spec that fits the kernel, under
// the fixed name LoadAndAssign expects: the tp_btf shape the kernel's BTF
// declares, or the classic tracepoint with the record offsets of its
// format file.
func selectProgram(spec *ebpf.CollectionSpec, k kernelInfo, mode string) error {
	var name string
	switch mode {
	case "tp_btf":
		n, ok := kfreeSkbBTFArgs(k.btf)
		switch {
		case !ok:
			return fmt.Errorf("%w: kernel BTF has no btf_trace_kfree_skb", ErrNotSupported)
		case n >= 4:
			name = "kfree_skb_btf_rxsk" // 6.11+
		case n == 3:
			name = "kfree_skb_btf" // 5.17+
		default:
			name = "kfree_skb_btf_noreason"
		}
	case "tracepoint":
		name = "kfree_skb_tp"
		lay, err := KfreeSkbLayout(*k.format)
		if err != nil {
			return err
		}
		if err := setVars(spec, map[string]any{
			"cfg_off_skbaddr":  int32(lay.Skbaddr),
			"cfg_off_location": int32(lay.Location),
			"cfg_off_protocol": int32(lay.Protocol),
			"cfg_off_reason":   int32(lay.Reason),
			"cfg_off_rx_sk":    int32(lay.RxSk),
		}); err != nil {
			return err
		}
	}
	chosen := spec.Programs[name]
	clear(spec.Programs)
	spec.Programs["kfree_skb"] = chosen
	return nil
}

// configure sets the program's load-time constants from opts (filters and
// features) and shrinks the maps of features that are off.
func configure(spec *ebpf.CollectionSpec, opts Options, l4 uint8, reasons *Reasons) error {
	vars, err := configVars(opts, l4, reasons)
	if err != nil {
		return err
	}
	if err := setVars(spec, vars); err != nil {
		return err
	}
	// Features that are off get the smallest maps the kernel accepts.
	if !opts.Stacks {
		spec.Maps["stacks"].MaxEntries = 1
		spec.Maps["stack_samples"].MaxEntries = 1
	}
	if !opts.Flows {
		spec.Maps["flows"].MaxEntries = 1
	}
	if opts.Events {
		spec.Maps["events"].MaxEntries = uint32(opts.RingSize)
	} else {
		spec.Maps["events"].MaxEntries = uint32(os.Getpagesize())
	}
	return nil
}

// configVars returns the cfg_* constants of bpf/droptrace.c for opts.
func configVars(opts Options, l4 uint8, reasons *Reasons) (map[string]any, error) {
	vars := map[string]any{
		"cfg_l4proto": l4,
		"cfg_port":    opts.Port,
		"cfg_stacks":  b2u(opts.Stacks),
		"cfg_flows":   b2u(opts.Flows),
		"cfg_events":  b2u(opts.Events),
	}
	if opts.Netns != "" {
		ino, err := netnsInode(opts.Netns)
		if err != nil {
			return nil, err
		}
		vars["cfg_netns"] = ino
	}
	if opts.Host.IsValid() {
		var host [16]byte
		fam := uint8(6)
		if a := opts.Host.Unmap(); a.Is4() {
			fam = 4
			a4 := a.As4()
			copy(host[:], a4[:])
		} else {
			host = opts.Host.As16()
		}
		vars["cfg_host_family"] = fam
		vars["cfg_host"] = host
	}
	if opts.Reason != "" {
		code, ok := reasons.codeOrNumber(opts.Reason)
		if !ok {
			return nil, fmt.Errorf("unknown drop reason %q on this kernel (known: %s)", opts.Reason, strings.Join(reasons.Names(), ", "))
		}
		vars["cfg_reason_set"] = uint8(1)
		vars["cfg_reason"] = code
	}
	if opts.Flows || opts.Stacks {
		var noise [maxNoise]uint32
		n := copy(noise[:], noiseCodes(reasons))
		vars["cfg_noise"] = noise
		vars["cfg_noise_n"] = uint8(n)
	}
	return vars, nil
}

// load creates the maps and the program and attaches it.
func (t *Tracer) load(spec *ebpf.CollectionSpec, kspec *btf.Spec) error {
	var copts ebpf.CollectionOptions
	if kspec != nil {
		copts.Programs.KernelTypes = kspec
	}
	// LoadAndAssign rather than NewCollection: it creates no Variables, so
	// no .rodata/.bss memory is mapped into this process. Such mappings keep
	// the kernel maps alive until the garbage collector runs, and Close must
	// free everything at once.
	if err := spec.LoadAndAssign(&t.objs, &copts); err != nil {
		return loadError(err)
	}
	t.prog = t.objs.Prog
	var err error
	if t.attach == "tp_btf" {
		t.link, err = link.AttachTracing(link.TracingOptions{Program: t.prog})
	} else {
		t.link, err = link.Tracepoint("skb", "kfree_skb", t.prog, nil)
	}
	if err != nil {
		t.objs.close()
		return fmt.Errorf("attaching %s kfree_skb: %w", t.attach, loadError(err))
	}
	return nil
}

// startEvents opens the ring of single drops and starts its reader.
func (t *Tracer) startEvents() error {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err == nil {
		t.boot = time.Now().Add(-time.Duration(ts.Nano()))
	}
	ring, err := ringbuf.NewReader(t.objs.Events)
	if err != nil {
		return fmt.Errorf("opening event ring: %w", err)
	}
	t.ring = ring
	t.events = make(chan Event, 4096)
	t.done = make(chan struct{})
	t.wg.Add(1)
	go t.readEvents()
	return nil
}

// Info reports how the tracer attached.
func (t *Tracer) Info() Info {
	i := Info{Attach: t.attach}
	if t.reasons != nil {
		i.ReasonSource = t.reasons.Source
	}
	if pi, err := t.prog.Info(); err == nil {
		id, _ := pi.ID()
		i.ProgramID = uint32(id)
		// The program's own map list includes .rodata and .bss, which
		// the tracer holds no handle to.
		if ids, ok := pi.MapIDs(); ok {
			for _, m := range ids {
				i.MapIDs = append(i.MapIDs, uint32(m))
			}
		}
	}
	if t.link != nil {
		if li, err := t.link.Info(); err == nil {
			i.LinkID = uint32(li.ID)
		}
	}
	sort.Slice(i.MapIDs, func(a, b int) bool { return i.MapIDs[a] < i.MapIDs[b] })
	return i
}

// Reasons is the reason table the tracer names drops with (nil on kernels
// without reasons).
func (t *Tracer) Reasons() *Reasons { return t.reasons }

// Events returns the stream of single drops; nil without Options.Events.
// The channel closes when the tracer closes.
func (t *Tracer) Events() <-chan Event { return t.events }

// Close detaches the program and frees every map. It is safe to call twice.
func (t *Tracer) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	t.mu.Unlock()
	var errs []error
	if t.link != nil {
		errs = append(errs, t.link.Close())
	}
	if t.ring != nil {
		close(t.done)
		errs = append(errs, t.ring.Close())
		t.wg.Wait()
	}
	t.objs.close()
	return errors.Join(errs...)
}

// Snapshot reads the counts accumulated since Start.
func (t *Tracer) Snapshot() (Snapshot, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return Snapshot{}, errors.New("tracer closed")
	}
	s := Snapshot{Time: time.Now()}

	rows := map[rowKey]*Row{}
	err := readMap(t.objs.Drops, func(key *droptraceDropKey, vals []uint64) {
		var n uint64
		for _, v := range vals {
			n += v
		}
		r := t.row(*key)
		r.Count = n
		rows[r.key] = &r
	})
	if err != nil {
		return Snapshot{}, fmt.Errorf("reading drop counts: %w", err)
	}

	if t.opts.Flows {
		err := readMap(t.objs.Flows, func(fk *droptraceFlowKey, n []uint64) {
			if r := rows[keyOf(fk.Drop)]; r != nil {
				r.Flows = append(r.Flows, flowOf(fk.Flow, n[0]))
			}
		})
		if err != nil {
			return Snapshot{}, fmt.Errorf("reading flows: %w", err)
		}
	}

	if t.opts.Stacks {
		err := readMap(t.objs.Samples, func(sk *droptraceDropKey, n []uint64) {
			id := sk.StackId
			sk.StackId = -1
			if r := rows[keyOf(*sk)]; r != nil {
				r.Stacks = append(r.Stacks, Stack{ID: id, Samples: n[0], Frames: t.stack(id)})
			}
		})
		if err != nil {
			return Snapshot{}, fmt.Errorf("reading stack samples: %w", err)
		}
	}

	for _, r := range rows {
		sortStacks(r.Stacks)
		if len(r.Flows) > 0 {
			sort.SliceStable(r.Flows, func(i, j int) bool {
				if r.Flows[i].Count != r.Flows[j].Count {
					return r.Flows[i].Count > r.Flows[j].Count
				}
				return r.Flows[i].Src+r.Flows[i].Dst < r.Flows[j].Src+r.Flows[j].Dst
			})
			// Keep every flow internally so that Delta is exact; trim
			// in TopFlows when rendering.
		}
		if r.Noise {
			s.Noise = append(s.Noise, *r)
		} else {
			s.Rows = append(s.Rows, *r)
		}
	}
	sortRows(s.Rows)
	sortRows(s.Noise)

	stats, err := t.stats()
	if err != nil {
		return Snapshot{}, err
	}
	s.LostEvents, s.Unattributed, s.FlowOverflow, s.StackErrors = stats[0], stats[1], stats[2], stats[3]
	return s, nil
}

// stats sums the per-CPU counters of what the program could not do.
func (t *Tracer) stats() ([4]uint64, error) {
	var out [4]uint64
	err := readMap(t.objs.Stats, func(i *uint32, vals []uint64) {
		if int(*i) < len(out) {
			for _, v := range vals {
				out[*i] += v
			}
		}
	})
	if err != nil {
		return out, fmt.Errorf("reading tracer stats: %w", err)
	}
	return out, nil
}

func keyOf(k droptraceDropKey) rowKey {
	return rowKey{location: k.Location, reason: k.Reason, netns: k.Netns, ifindex: k.Ifindex,
		stackID: k.StackId, protocol: k.Protocol, l4proto: k.L4proto}
}

// row turns a map key into a described row (count not set).
func (t *Tracer) row(k droptraceDropKey) Row {
	r := Row{key: keyOf(k), ReasonCode: k.Reason, Netns: k.Netns, Ifindex: k.Ifindex,
		Protocol: ethertypeName(k.Protocol), L4: l4Name(k.L4proto)}
	if t.reasons != nil {
		r.Reason = t.reasons.Name(k.Reason)
	}
	if sym, ok := t.syms.Resolve(k.Location); ok {
		r.Function, r.Location = sym.Name, sym.String()
	} else {
		r.Location = "0x" + strconv.FormatUint(k.Location, 16)
	}
	c := Classify(r.Reason, r.Function)
	r.Stage, r.AltStage, r.Noise, r.Class = c.Stage, c.Alt, c.Noise, c.Class
	if k.Ifindex != 0 {
		r.Ifname = t.names.name(k.Netns, k.Ifindex)
	}
	return r
}

// stack symbolizes a stack id, cached: ids are stable while the map lives.
func (t *Tracer) stack(id int32) []string {
	if id < 0 {
		return nil
	}
	if s, ok := t.stacks[id]; ok {
		return s
	}
	var pcs [127]uint64
	if err := t.objs.Stacks.Lookup(uint32(id), &pcs); err != nil {
		return nil
	}
	var out []string
	for _, pc := range trimTracingFrames(t.syms, pcs[:]) {
		if pc == 0 {
			break
		}
		if sym, ok := t.syms.Resolve(pc); ok {
			out = append(out, sym.String())
		} else {
			out = append(out, "0x"+strconv.FormatUint(pc, 16))
		}
	}
	t.stacks[id] = out
	return out
}

// trimTracingFrames drops the frames of the tracing machinery itself (the
// BPF program, bpf_trace_run*, perf_trace_*) from the top of a stack, so
// that a stack starts at the function that freed the packet.
func trimTracingFrames(syms *Symbols, pcs []uint64) []uint64 {
	cut := 0
	for i, pc := range pcs {
		if pc == 0 || i > 8 {
			break
		}
		sym, _ := syms.Resolve(pc)
		if strings.HasPrefix(sym.Name, "bpf_trace_run") || strings.HasPrefix(sym.Name, "perf_trace_") ||
			strings.HasPrefix(sym.Name, "trace_event_raw_event_") || strings.HasPrefix(sym.Name, "__traceiter_") ||
			strings.HasPrefix(sym.Name, "__bpf_trace_") {
			cut = i + 1
		}
	}
	return pcs[cut:]
}

func flowOf(f droptraceFlow, n uint64) Flow {
	var src, dst netip.Addr
	switch f.Family {
	case 4:
		src = netip.AddrFrom4([4]byte(f.Saddr[:4]))
		dst = netip.AddrFrom4([4]byte(f.Daddr[:4]))
	case 6:
		src = netip.AddrFrom16(f.Saddr)
		dst = netip.AddrFrom16(f.Daddr)
	}
	fl := Flow{Proto: l4Name(f.L4proto), Count: n}
	switch f.L4proto {
	case 6, 17:
		fl.Src = netip.AddrPortFrom(src, f.Sport).String()
		fl.Dst = netip.AddrPortFrom(dst, f.Dport).String()
	case 1, 58:
		fl.Src, fl.Dst = src.String(), dst.String()
		fl.ICMP = fmt.Sprintf("type %d code %d", f.Sport, f.Dport)
	default:
		fl.Src, fl.Dst = src.String(), dst.String()
	}
	return fl
}

func (t *Tracer) readEvents() {
	defer t.wg.Done()
	defer close(t.events)
	for {
		rec, err := t.ring.Read()
		if err != nil {
			return // closed
		}
		if len(rec.RawSample) < int(unsafe.Sizeof(droptraceEvent{})) {
			continue
		}
		ev := *(*droptraceEvent)(unsafe.Pointer(&rec.RawSample[0]))
		t.mu.Lock()
		r := t.row(ev.Key)
		t.mu.Unlock()
		r.Count = 1
		e := Event{Time: t.boot.Add(time.Duration(ev.TsNs)), Ktime: time.Duration(ev.TsNs), CPU: ev.Cpu, Row: r}
		if ev.Flow.Family != 0 {
			f := flowOf(ev.Flow, 1)
			e.Flow = &f
		}
		select {
		case t.events <- e:
		case <-t.done:
			return
		}
	}
}

func b2u(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

func setVars(spec *ebpf.CollectionSpec, vars map[string]any) error {
	for name, v := range vars {
		vs, ok := spec.Variables[name]
		if !ok {
			return fmt.Errorf("bpf object has no variable %s", name)
		}
		if err := vs.Set(v); err != nil {
			return fmt.Errorf("setting %s: %w", name, err)
		}
	}
	return nil
}

// codeOrNumber resolves a reason filter; a nil table accepts numbers only.
func (r *Reasons) codeOrNumber(s string) (uint32, bool) {
	if r == nil {
		n, err := strconv.ParseUint(s, 0, 32)
		return uint32(n), err == nil
	}
	return r.Code(s)
}

// kfreeSkbBTFArgs returns the number of tracepoint arguments (without the
// leading context pointer) of btf_trace_kfree_skb: 2 before 5.17, 3 with
// the reason, 4 with rx_sk (6.11+).
func kfreeSkbBTFArgs(spec *btf.Spec) (int, bool) {
	if spec == nil {
		return 0, false
	}
	var td *btf.Typedef
	if err := spec.TypeByName("btf_trace_kfree_skb", &td); err != nil {
		return 0, false
	}
	ptr, ok := td.Type.(*btf.Pointer)
	if !ok {
		return 0, false
	}
	fp, ok := ptr.Target.(*btf.FuncProto)
	if !ok || len(fp.Params) < 1 {
		return 0, false
	}
	return len(fp.Params) - 1, true
}

var (
	reasonsMu    sync.Mutex
	reasonsCache *Reasons
)

// kernelReasons reads the running kernel's reasons from BTF once per
// process: the table cannot change while the kernel runs (a module loaded
// later adds only its own subsystem, named SUBSYS:n until then).
func kernelReasons(kspec *btf.Spec) (*Reasons, error) {
	reasonsMu.Lock()
	defer reasonsMu.Unlock()
	if reasonsCache != nil {
		return reasonsCache, nil
	}
	r, err := kernelReasonsByName(kspec)
	if err != nil {
		return nil, err
	}
	reasonsCache = r
	return r, nil
}

// kernelReasonsByName is ReasonsFromBTF for the running kernel without
// decoding every type: the per-subsystem enums are looked up by the names
// ending in "drop_reason" in the string sections of /sys/kernel/btf/vmlinux
// and of the modules that define subsystems. BTF that did not come from
// there (a vmlinux file elsewhere) is walked whole.
func kernelReasonsByName(kspec *btf.Spec) (*Reasons, error) {
	mods := subsysModuleSpecs(kspec)
	r, core, err := coreReasonsFromBTF(kspec)
	if err != nil {
		return nil, err
	}
	specs := map[string]*btf.Spec{"vmlinux": kspec}
	for name, s := range mods {
		specs[name] = s
	}
	for file, s := range specs {
		names, err := btfFileNames(filepath.Join("/sys/kernel/btf", file), "drop_reason")
		if err != nil {
			return ReasonsFromBTF(kspec, slices.Collect(maps.Values(mods))...)
		}
		for _, n := range names {
			types, _ := s.AnyTypesByName(n)
			for _, typ := range types {
				if e, ok := typ.(*btf.Enum); ok && e != core {
					r.addSubsysEnum(e)
				}
			}
		}
	}
	return r, nil
}

// btfFileNames is btfNamesWithSuffix of a file.
func btfFileNames(path, suffix string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return btfNamesWithSuffix(f, suffix)
}

// subsysModuleSpecs loads the BTF of loaded modules that define
// per-subsystem drop reasons (mac80211, openvswitch), named after the
// subsystems the kernel lists, by module name. A module that is not loaded
// cannot drop.
func subsysModuleSpecs(kspec *btf.Spec) map[string]*btf.Spec {
	var sub *btf.Enum
	if kspec == nil || kspec.TypeByName("skb_drop_reason_subsys", &sub) != nil {
		return nil
	}
	out := map[string]*btf.Spec{}
	for _, v := range sub.Values {
		name := strings.TrimPrefix(v.Name, "SKB_DROP_REASON_SUBSYS_")
		mod, _, _ := strings.Cut(strings.ToLower(name), "_")
		if _, seen := out[mod]; v.Value == 0 || name == "NUM" || seen {
			continue
		}
		if _, err := os.Stat(filepath.Join("/sys/kernel/btf", mod)); err != nil {
			continue
		}
		if s, err := btf.LoadKernelModuleSpec(mod); err == nil {
			out[mod] = s
		}
	}
	return out
}

// netnsInode resolves a namespace spec to the inode the kernel keys drops by.
func netnsInode(spec string) (uint32, error) {
	path, err := netns.Path(spec)
	if err != nil {
		return 0, err
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, fmt.Errorf("netns %q: %w", spec, err)
	}
	return uint32(st.Ino), nil
}

// NetnsInode returns the inode of a namespace given as Options.Netns does
// ("" is this process's namespace), to compare with Row.Netns.
func NetnsInode(spec string) (uint32, error) {
	if spec == "" {
		spec = "/proc/self/ns/net"
	}
	return netnsInode(spec)
}

// checkPrivileges gives the clear error before the verifier's EPERM.
func checkPrivileges() error {
	if os.Geteuid() == 0 {
		return nil
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("%w: reading capabilities: %w", ErrPermission, err)
	}
	has := func(c int) bool { return data[c/32].Effective&(1<<(uint(c)%32)) != 0 }
	if has(unix.CAP_SYS_ADMIN) || (has(unix.CAP_BPF) && has(unix.CAP_PERFMON)) {
		return nil
	}
	return fmt.Errorf("%w (running as uid %d without them)", ErrPermission, os.Geteuid())
}

// kernelError marks a failure of the kernel to load or attach the program
// (as opposed to bad options), after which Start may try the other mode.
type kernelError struct{ err error }

func (e *kernelError) Error() string { return e.err.Error() }
func (e *kernelError) Unwrap() error { return e.err }

// loadError turns EPERM into ErrPermission, keeping the verifier log, and
// marks every other failure as the kernel's.
func loadError(err error) error {
	if errors.Is(err, syscall.EPERM) || errors.Is(err, os.ErrPermission) {
		return fmt.Errorf("%w: %w", ErrPermission, err)
	}
	var ve *ebpf.VerifierError
	if errors.As(err, &ve) {
		return &kernelError{fmt.Errorf("kernel verifier rejected the drop tracer: %+v", ve)}
	}
	return &kernelError{err}
}

// ifnames resolves (netns inode, ifindex) to interface names, cached.
// Interface indexes are per namespace, so the lookup enters a namespace
// with that inode: this process's, a named one under /run/netns, or one a
// process lives in.
type ifnames struct {
	mu    sync.Mutex
	cache map[[2]uint32]string
	paths map[uint32]string // netns inode -> a path to it, "" if none found
	self  uint32
}

func newIfnames() *ifnames {
	n := &ifnames{cache: map[[2]uint32]string{}, paths: map[uint32]string{}}
	n.self, _ = NetnsInode("")
	return n
}

func (n *ifnames) name(ns, idx uint32) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	k := [2]uint32{ns, idx}
	if s, ok := n.cache[k]; ok {
		return s
	}
	s := n.lookup(ns, idx)
	n.cache[k] = s
	return s
}

func (n *ifnames) lookup(ns, idx uint32) string {
	byIndex := func() (string, error) {
		ifc, err := net.InterfaceByIndex(int(idx))
		if err != nil {
			return "", err
		}
		return ifc.Name, nil
	}
	if ns == 0 {
		return "" // namespace unknown: the index means nothing
	}
	if ns == n.self {
		s, _ := byIndex()
		return s
	}
	path, ok := n.paths[ns]
	if !ok {
		path = findNetns(ns) // walks /proc: once per namespace
		n.paths[ns] = path
	}
	if path == "" {
		return ""
	}
	var name string
	_ = netns.Do(path, func() error {
		var err error
		name, err = byIndex()
		return err
	})
	return name
}

// findNetns returns a path to a namespace file whose inode is ino.
func findNetns(ino uint32) string {
	match := func(p string) bool {
		var st unix.Stat_t
		return unix.Stat(p, &st) == nil && uint32(st.Ino) == ino
	}
	if ents, err := os.ReadDir(netns.RunDir); err == nil {
		for _, e := range ents {
			if p := filepath.Join(netns.RunDir, e.Name()); match(p) {
				return p
			}
		}
	}
	procs, _ := os.ReadDir("/proc")
	for _, e := range procs {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		if p := filepath.Join("/proc", e.Name(), "ns/net"); match(p) {
			return p
		}
	}
	return ""
}
