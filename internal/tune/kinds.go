package tune

import "github.com/netdrop/netdrop/diagnose"

// kind is what tune knows about one kind of setting beyond reading and
// writing it: what a change costs, and when tune refuses one. Each
// diagnose.ChangeKind has a row here and a kernelApplier in kernel_linux.go
// (TestEveryKindHasAnApplier fails until both exist); together they are
// the kind's applier.
type kind struct {
	// risk says what a change costs (memory, latency, a link flap).
	risk func(s Setting) string
	// vet says why a change must not be made, or "" (nil: no refusal).
	vet func(s Setting, current, proposed string, f diagnose.Finding) string
	// reprints marks kinds the kernel prints back in another form than
	// written (RPS masks, zero-padded in 32-bit words), so a write is not
	// compared on read-back.
	reprints bool
}

func risk(text string) func(Setting) string { return func(Setting) string { return text } }

var kinds = map[diagnose.ChangeKind]kind{
	diagnose.ChangeSysctl: {risk: sysctlRisk, vet: vetSysctl},
	diagnose.ChangeRing: {risk: risk("the driver resets the interface to resize its rings: a short link flap; larger rings add memory and latency under load"),
		vet: refuseLower},
	diagnose.ChangeChannels: {risk: risk("the driver re-creates its queues: a short traffic interruption; IRQ affinity and RPS settings of the queues may reset"),
		vet: refuseLower},
	diagnose.ChangeTxQueueLen: {risk: risk("a longer transmit queue absorbs bursts at the cost of queueing delay (bufferbloat) on a slow link"),
		vet: refuseLower},
	diagnose.ChangeRPSCPUs: {risk: risk("softirq work moves to other CPUs: better spread, some cross-CPU cache traffic"), reprints: true},
}
