package counters

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// testdata/nic is laid out like /sys and /proc of this machine (kernel 6.18,
// a virtio_net eth0 whose MSI-X vectors belong to the parent PCI function),
// plus eth1, a NIC on a legacy INTx line named after the interface in
// /proc/interrupts, with two queues and RPS/XPS masks set.
func TestReadNICLayout(t *testing.T) {
	fs := NewFS("testdata/nic")
	f, err := fs.Open(fs.ProcPath("interrupts"))
	if err != nil {
		t.Fatal(err)
	}
	irqNames, err := parseIRQNames(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		want NIC
	}{
		{"eth0", NIC{
			Name: "eth0", Driver: "virtio_net", RxQueues: 1, TxQueues: 1, TxQueueLen: 1000,
			IRQs: []IRQ{
				{Number: 37, Name: "virtio2-config", Affinity: "0-1"},
				{Number: 38, Name: "virtio2-input.0", Affinity: "0-1"},
				{Number: 39, Name: "virtio2-output.0", Affinity: "0-1"},
			},
			// tx-0 of a single-queue virtio_net has no xps_cpus
			// file: its mask is unknown, not off.
			RPSCPUs: []string{"0"}, XPSCPUs: []string{""},
		}},
		{"eth1", NIC{
			Name: "eth1", Driver: "e1000e", RxQueues: 2, TxQueues: 2, TxQueueLen: 10000,
			// eth10's line must not be taken for eth1's.
			IRQs:    []IRQ{{Number: 16, Name: "eth1", Affinity: "0"}},
			RPSCPUs: []string{"0", "3"}, XPSCPUs: []string{"1", "2"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := NIC{Name: tt.name}
			if err := readNICLayout(fs, tt.name, irqNames, &n); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, n); diff != "" {
				t.Errorf("readNICLayout (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("missing", func(t *testing.T) {
		n := NIC{Name: "eth9"}
		if err := readNICLayout(fs, "eth9", irqNames, &n); err == nil {
			t.Fatal("readNICLayout of a missing interface succeeded")
		}
	})
}

func TestSysfsShowsLink(t *testing.T) {
	fs := NewFS("testdata/nic")
	tests := []struct {
		name string
		l    linkInfo
		want bool
	}{
		{"same interface", linkInfo{Index: 4, Name: "eth0", MAC: "02:fc:00:00:00:01"}, true},
		// Inside another namespace, "eth0" is often a veth with another
		// ifindex or MAC: sysfs is showing the host's eth0.
		{"other ifindex", linkInfo{Index: 2, Name: "eth0", MAC: "02:fc:00:00:00:01"}, false},
		{"other mac", linkInfo{Index: 4, Name: "eth0", MAC: "0a:58:0a:f4:00:05"}, false},
		{"absent", linkInfo{Index: 9, Name: "eth9"}, false},
	}
	for _, tt := range tests {
		if got := sysfsShowsLink(fs, tt.l); got != tt.want {
			t.Errorf("%s: sysfsShowsLink = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestParseIRQNames(t *testing.T) {
	in := `           CPU0       CPU1       
  0:         22          0   IO-APIC   2-edge      timer
  7:          0          0   IO-APIC   7-fasteoi
 38:          0       1496 PCI-MSIX-0000:00:03.0   1-edge      virtio2-input.0
128:        100          5  IR-PCI-MSI-0000:3b:00.0 0-edge      mlx5_comp0@pci:0000:3b:00.0
NMI:          0          0   Non-maskable interrupts
ERR:          0
`
	got, err := parseIRQNames(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]string{0: "timer", 38: "virtio2-input.0", 128: "mlx5_comp0@pci:0000:3b:00.0"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("parseIRQNames (-want +got):\n%s", diff)
	}
	for name, bad := range map[string]string{"empty": "", "no header": " 38: 0 1 chip 1-edge x\n"} {
		if _, err := parseIRQNames(strings.NewReader(bad)); !errors.Is(err, ErrFileParse) {
			t.Errorf("%s: parseIRQNames = %v, want ErrFileParse", name, err)
		}
	}
}

func FuzzParseIRQNames(f *testing.F) {
	f.Add("           CPU0       CPU1\n 38:  0  1  PCI-MSIX 1-edge virtio2-input.0\nNMI: 0 0 x\n")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = parseIRQNames(strings.NewReader(s))
	})
}

func TestTrimCPUMask(t *testing.T) {
	for in, want := range map[string]string{
		"0": "0", "00000000,00000000": "0", "00000000,00000003": "3", "ff,00000000": "ff00000000", "": "0",
	} {
		if got := trimCPUMask(in); got != want {
			t.Errorf("trimCPUMask(%q) = %q, want %q", in, got, want)
		}
	}
}

// An RPS mask that cannot be read is unknown (""), not off ("0"), and the
// read error is reported: a fix must not turn on what may already be on.
func TestReadNICLayoutUnreadableMask(t *testing.T) {
	root := t.TempDir()
	fs := NewFS(root)
	q := fs.SysPath("class", "net", "eth5", "queues")
	// A directory where the file should be: reading it fails (EISDIR).
	for _, d := range []string{"rx-0/rps_cpus", "rx-1", "tx-0"} {
		if err := os.MkdirAll(filepath.Join(q, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(q, "rx-1", "rps_cpus"), []byte("00000000,00000000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	n := NIC{Name: "eth5"}
	err := readNICLayout(fs, "eth5", nil, &n)
	if err == nil || !strings.Contains(err.Error(), "rx-0/rps_cpus") {
		t.Errorf("error = %v, want the unreadable rx-0 mask named", err)
	}
	if diff := cmp.Diff([]string{"", "0"}, n.RPSCPUs); diff != "" {
		t.Errorf("RPSCPUs (-want +got):\n%s", diff)
	}
}
