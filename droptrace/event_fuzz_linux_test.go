//go:build linux

package droptrace

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"os"
	"strings"
	"testing"
	"unsafe"

	"github.com/netdrop/netdrop/stage"
)

// eventBytes is a ring-buffer record as the BPF program writes it.
func eventBytes(ev droptraceEvent) []byte {
	return append([]byte(nil), unsafe.Slice((*byte)(unsafe.Pointer(&ev)), unsafe.Sizeof(ev))...)
}

// castEvent decodes a record the way readEvents does: records shorter than
// the event are skipped, longer ones read from their start.
func castEvent(raw []byte) (droptraceEvent, bool) {
	if len(raw) < int(unsafe.Sizeof(droptraceEvent{})) {
		return droptraceEvent{}, false
	}
	return *(*droptraceEvent)(unsafe.Pointer(&raw[0])), true
}

// fuzzTracer is a tracer without kernel objects: the reason names of the
// 6.18 tracepoint format and the symbols of the 6.18 kallsyms fixture, so
// that row and flowOf run as they do on events from the ring buffer.
func fuzzTracer(tb testing.TB) *Tracer {
	f, err := os.Open("testdata/format/linux-6.18.format")
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	ff, err := ParseFormat(f)
	if err != nil {
		tb.Fatal(err)
	}
	reasons, err := ReasonsFromFormat(ff)
	if err != nil {
		tb.Fatal(err)
	}
	k, err := os.Open("testdata/kallsyms/linux-6.18.txt")
	if err != nil {
		tb.Fatal(err)
	}
	defer k.Close()
	syms, err := ParseKallsyms(k)
	if err != nil {
		tb.Fatal(err)
	}
	// Namespace 1 stands for the tracer's own; any other is unknown (no
	// walk of /proc per fuzz input).
	names := &ifnames{cache: map[[2]uint32]string{}, paths: map[uint32]string{}, self: 1}
	return &Tracer{reasons: reasons, syms: syms, names: names}
}

// FuzzRingEvent feeds any bytes as a ring-buffer record to the event
// decoding of readEvents (the cast onto droptraceEvent, row and flowOf). The
// cast must agree with a field-by-field decoding in host byte order (the
// generated struct has the BPF program's layout and no hidden padding), the
// row must keep the key's reason code and name a location, and a flow's
// addresses and ports must be the record's.
func FuzzRingEvent(f *testing.F) {
	ev := droptraceEvent{TsNs: 123456789}
	ev.Key.Location = 0xffffffff82046290 + 0x1a2 // in __udp4_lib_rcv
	ev.Key.Reason = 2
	ev.Key.Netns, ev.Key.Ifindex, ev.Key.StackId = 1, 1, -1
	ev.Key.Protocol, ev.Key.L4proto = 0x0800, 17
	ev.Flow.Family, ev.Flow.L4proto = 4, 17
	copy(ev.Flow.Saddr[:], []byte{10, 0, 0, 1})
	copy(ev.Flow.Daddr[:], []byte{10, 0, 0, 2})
	ev.Flow.Sport, ev.Flow.Dport = 5000, 4790
	f.Add(eventBytes(ev))
	ev.Flow.Family, ev.Flow.L4proto, ev.Key.L4proto, ev.Key.Protocol = 6, 58, 58, 0x86dd
	ev.Flow.Saddr = [16]byte{0xfe, 0x80, 15: 1}
	ev.Flow.Sport, ev.Flow.Dport = 135, 0
	f.Add(eventBytes(ev))
	f.Add(make([]byte, 10))
	t0 := fuzzTracer(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		ev, ok := castEvent(raw)
		if !ok {
			return
		}
		var ref droptraceEvent
		if err := binary.Read(bytes.NewReader(raw), binary.NativeEndian, &ref); err != nil {
			t.Fatal(err)
		}
		if ev != ref {
			t.Fatalf("cast %+v, field by field %+v", ev, ref)
		}
		ev.Key.Netns %= 2 // see fuzzTracer
		r := t0.row(ev.Key)
		if r.ReasonCode != ev.Key.Reason || r.Location == "" || r.Reason == "" {
			t.Fatalf("row %+v of key %+v", r, ev.Key)
		}
		if sym, ok := t0.syms.Resolve(ev.Key.Location); ok != (r.Function != "") || ok && r.Function != sym.Name {
			t.Fatalf("location %#x resolves to %v (%v), row says %q", ev.Key.Location, sym, ok, r.Function)
		}
		if r.Stage != "" && !stage.Valid(r.Stage) {
			t.Fatalf("row of an unknown stage %q", r.Stage)
		}
		fl := flowOf(ev.Flow, 1)
		var src, dst netip.Addr
		switch ev.Flow.Family {
		case 4:
			src, dst = netip.AddrFrom4([4]byte(ev.Flow.Saddr[:4])), netip.AddrFrom4([4]byte(ev.Flow.Daddr[:4]))
		case 6:
			src, dst = netip.AddrFrom16(ev.Flow.Saddr), netip.AddrFrom16(ev.Flow.Daddr)
		default:
			return // readEvents shows no flow for family 0; others carry no address
		}
		switch ev.Flow.L4proto {
		case 6, 17:
			s, err1 := netip.ParseAddrPort(fl.Src)
			d, err2 := netip.ParseAddrPort(fl.Dst)
			if err1 != nil || err2 != nil || s != netip.AddrPortFrom(src, ev.Flow.Sport) || d != netip.AddrPortFrom(dst, ev.Flow.Dport) {
				t.Fatalf("flow %+v of %+v", fl, ev.Flow)
			}
		default:
			s, err1 := netip.ParseAddr(fl.Src)
			d, err2 := netip.ParseAddr(fl.Dst)
			if err1 != nil || err2 != nil || s != src || d != dst {
				t.Fatalf("flow %+v of %+v", fl, ev.Flow)
			}
			if icmp := ev.Flow.L4proto == 1 || ev.Flow.L4proto == 58; icmp != strings.HasPrefix(fl.ICMP, "type ") {
				t.Fatalf("icmp %q for protocol %d", fl.ICMP, ev.Flow.L4proto)
			}
		}
	})
}
