package counters

// The receive and transmit layout of each NIC: what `ethtool -G/-L` and IRQ
// affinity fixes are computed from. Values come from sysfs
// (net/core/net-sysfs.c: /sys/class/net/IF/queues/{rx,tx}-N/{rps,xps}_cpus,
// tx_queue_len, device/driver, device/msi_irqs from drivers/pci/msi), from
// /proc/interrupts and /proc/irq/N/smp_affinity_list (kernel/irq/proc.c),
// and from the RTM_GETLINK attributes IFLA_PARENT_DEV_NAME,
// IFLA_NUM_{RX,TX}_QUEUES and IFLA_TXQLEN.
//
// sysfs is mounted for one network namespace and keeps showing it after a
// thread enters another one with setns. Every sysfs directory is therefore
// checked against the netlink view (ifindex and MAC address) before it is
// used; a NIC that lives in another namespace than the one sysfs shows gets
// only its netlink data and an Unavailable line.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// nicSource fills Snapshot.NICs from sysfs, /proc and netlink. It is not
// registered: linkSource reads the layout with the same link dump; tests
// use it alone.
type nicSource struct{}

func (nicSource) ID() SourceID { return NICLayout }

func (nicSource) Collect(_ context.Context, r *Reading, s *Snapshot) error {
	links, err := r.linkDump()
	if err != nil {
		return err
	}
	return collectNICs(r, s, links)
}

// collectNICs fills the layout of every link that has a device. The link
// statistics source calls it with its own dump, so one snapshot dumps the
// links once.
func collectNICs(r *Reading, s *Snapshot, links []linkInfo) error {
	fs := r.FS
	var irqNames map[int]string // read once, on the first NIC that needs it
	// The kernel names the parent device of every link that has one
	// (IFLA_PARENT_DEV_NAME, 5.16): when it named any, a link it named no
	// parent for has no device link in sysfs either (both come from
	// dev->dev.parent), and sysfs need not be asked.
	parentNamed := false
	for _, l := range links {
		parentNamed = parentNamed || l.ParentDev != ""
	}
	for _, l := range links {
		// A link has a device when netlink names its parent or sysfs
		// shows a device link for it, and sysfs is believed only for
		// the link netlink described. Asking sysfs for the device
		// first spares the two reads of that check for virtual links
		// (lo, veth, bridges), which have no device either way.
		if l.ParentDev == "" && parentNamed {
			continue
		}
		if l.ParentDev == "" {
			if _, err := os.Stat(fs.SysPath("class", "net", l.Name, "device")); err != nil {
				continue
			}
		}
		sysOK := sysfsShowsLink(fs, l)
		if !sysOK && l.ParentDev == "" {
			continue
		}
		n := nicEntry(s, l.Name)
		applyLinkLayout(n, l)
		if !sysOK {
			s.Unavailable = append(s.Unavailable, Unavailable{
				Source: NICLayout, Object: l.Name,
				Reason: "sysfs shows another network namespace's interfaces; queues, RPS/XPS masks, driver and IRQs not read (mount sysfs inside the namespace to see them)",
			})
			continue
		}
		if irqNames == nil {
			irqNames = map[int]string{}
			if b, err := r.interruptsText(); err != nil {
				s.Fail(ProcInterrupts, err)
			} else if irqNames, err = parseIRQNames(bytes.NewReader(b)); err != nil {
				s.Fail(ProcInterrupts, err)
			}
		}
		if err := readNICLayout(fs, l.Name, irqNames, n); err != nil {
			s.FailObject(NICLayout, l.Name, err)
		}
	}
	return nil
}

// nicEntry returns the NICs entry for name, adding it if needed, so that the
// sysfs reader and the ethtool reader fill one entry per interface whatever
// their order. The pointer is valid until the next append to s.NICs.
func nicEntry(s *Snapshot, name string) *NIC {
	for i := range s.NICs {
		if s.NICs[i].Name == name {
			return &s.NICs[i]
		}
	}
	s.NICs = append(s.NICs, NIC{Name: name})
	return &s.NICs[len(s.NICs)-1]
}

// applyLinkLayout copies what netlink knows of the layout; sysfs, when it
// can be read, replaces the queue counts with what is really configured
// (IFLA_NUM_*_QUEUES is the real number as well, so they agree).
func applyLinkLayout(n *NIC, l linkInfo) {
	if l.NumRxQueues > 0 {
		n.RxQueues = l.NumRxQueues
	}
	if l.NumTxQueues > 0 {
		n.TxQueues = l.NumTxQueues
	}
	if l.TxQLen >= 0 {
		n.TxQueueLen = l.TxQLen
	}
}

// sysfsShowsLink reports whether /sys/class/net/NAME is the interface netlink
// described, and not an interface of the same name in the namespace sysfs
// was mounted in.
func sysfsShowsLink(fs FS, l linkInfo) bool {
	dir := fs.SysPath("class", "net", l.Name)
	idx, err := readSysString(filepath.Join(dir, "ifindex"))
	if err != nil || idx != strconv.Itoa(l.Index) {
		return false
	}
	if l.MAC == "" {
		return true
	}
	addr, err := readSysString(filepath.Join(dir, "address"))
	return err == nil && addr == l.MAC
}

// readSysString reads a one-line sysfs attribute without its newline.
// sysfs hands the whole attribute (at most a page) to the first read, so
// a read shorter than the buffer is all of it; longer ones are read whole.
func readSysString(path string) (string, error) {
	fd, err := openat(unix.AT_FDCWD, path, unix.O_RDONLY|unix.O_CLOEXEC)
	if err != nil {
		return "", &iofs.PathError{Op: "open", Path: path, Err: err}
	}
	var buf [128]byte
	n, err := unix.Read(fd, buf[:])
	for err == unix.EINTR {
		n, err = unix.Read(fd, buf[:])
	}
	unix.Close(fd)
	switch {
	case err != nil:
		return "", &iofs.PathError{Op: "read", Path: path, Err: err}
	case n == len(buf):
		b, err := FS{}.ReadFile(path)
		if err != nil {
			return "", err
		}
		return strings.TrimSpace(string(b)), nil
	}
	return strings.TrimSpace(string(buf[:n])), nil
}

// readNICLayout fills n from /sys/class/net/NAME and the IRQ tables. A
// missing optional file (rps_cpus without CONFIG_RPS, xps_cpus on a device
// with one queue) leaves its mask "" (unknown), as does one that cannot be
// read, whose error is returned with the others once the rest is read; an
// unreadable queues directory ends the read.
func readNICLayout(fs FS, name string, irqNames map[int]string, n *NIC) error {
	dir := fs.SysPath("class", "net", name)
	// IFLA_TXQLEN, when the link dump had it, is the same dev->tx_queue_len.
	if n.TxQueueLen == 0 {
		if v, err := readSysString(filepath.Join(dir, "tx_queue_len")); err == nil {
			if q, err := strconv.Atoi(v); err == nil {
				n.TxQueueLen = q
			}
		}
	}
	if target, err := os.Readlink(filepath.Join(dir, "device", "driver")); err == nil {
		n.Driver = filepath.Base(target)
	}

	ents, err := readDirNames(filepath.Join(dir, "queues"))
	if err != nil {
		return fmt.Errorf("queues of %s: %w", name, err)
	}
	rx, tx := queueIndexes(ents)
	n.RxQueues, n.TxQueues = len(rx), len(tx)
	var errs []error
	mask := func(path string) string {
		v, err := readSysString(path)
		switch {
		case errors.Is(err, iofs.ErrNotExist):
			return ""
		case err != nil:
			errs = append(errs, err)
			return ""
		}
		return trimCPUMask(v)
	}
	n.RPSCPUs, n.XPSCPUs = nil, nil
	for _, q := range rx {
		n.RPSCPUs = append(n.RPSCPUs, mask(filepath.Join(dir, "queues", fmt.Sprintf("rx-%d", q), "rps_cpus")))
	}
	for _, q := range tx {
		n.XPSCPUs = append(n.XPSCPUs, mask(filepath.Join(dir, "queues", fmt.Sprintf("tx-%d", q), "xps_cpus")))
	}

	irqs := nicIRQNumbers(fs, name, irqNames)
	n.IRQs = n.IRQs[:0]
	for _, irq := range irqs {
		aff, _ := readSysString(fs.ProcPath("irq", strconv.Itoa(irq), "smp_affinity_list"))
		n.IRQs = append(n.IRQs, IRQ{Number: irq, Name: irqNames[irq], Affinity: aff})
	}
	if len(n.IRQs) == 0 {
		n.IRQs = nil
	}
	return errors.Join(errs...)
}

// queueIndexes returns the sorted indexes of the rx-N and tx-N directories.
func queueIndexes(ents []string) (rx, tx []int) {
	for _, name := range ents {
		var list *[]int
		switch {
		case strings.HasPrefix(name, "rx-"):
			list = &rx
		case strings.HasPrefix(name, "tx-"):
			list = &tx
		default:
			continue
		}
		if i, err := strconv.Atoi(name[3:]); err == nil && i >= 0 {
			*list = append(*list, i)
		}
	}
	sort.Ints(rx)
	sort.Ints(tx)
	return rx, tx
}

// trimCPUMask shortens a sysfs CPU mask ("00000000,00000003") to its
// significant hex digits ("3"), keeping "0" for an empty mask so that "0"
// always means off, as the NIC doc comment promises.
func trimCPUMask(v string) string {
	v = strings.ReplaceAll(v, ",", "")
	v = strings.TrimLeft(v, "0")
	if v == "" {
		return "0"
	}
	return v
}

// nicIRQNumbers finds the interrupt lines of an interface. The MSI/MSI-X
// vectors of its bus device are listed in device/msi_irqs; for devices such as
// virtio-net the netdev's device is a child of the PCI function that owns the
// vectors, so its parent is tried next. Without MSI, lines named after the
// interface in /proc/interrupts ("eth0", "eth0-TxRx-0") are used.
func nicIRQNumbers(fs FS, name string, irqNames map[int]string) []int {
	// The kernel resolves "device" and then ".." physically, from the
	// device's real directory, so "device/../msi_irqs" is the parent's
	// without resolving the links here one lstat per path element.
	// (filepath.Join would clean the ".." away lexically.)
	dev := fs.SysPath("class", "net", name, "device")
	for _, d := range []string{dev + "/msi_irqs", dev + "/../msi_irqs"} {
		if irqs := msiIRQs(d); len(irqs) > 0 {
			return irqs
		}
	}
	var out []int
	for irq, n := range irqNames {
		if n == name || strings.HasPrefix(n, name+"-") {
			out = append(out, irq)
		}
	}
	sort.Ints(out)
	return out
}

// msiIRQs lists the IRQ numbers named by the entries of an msi_irqs
// directory.
func msiIRQs(dir string) []int {
	ents, err := readDirNames(dir)
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		if n, err := strconv.Atoi(e); err == nil {
			out = append(out, n)
		}
	}
	sort.Ints(out)
	return out
}

// parseIRQNames reads /proc/interrupts into IRQ number -> action name (the
// last column, e.g. "virtio2-input.0"). Only numbered lines are kept; the
// named rows (NMI, LOC, …) are architecture counters, not device lines. The
// layout is kernel/irq/proc.c show_interrupts: "N:", one count per CPU
// column, the chip name, the hardware IRQ and trigger, then the actions.
func parseIRQNames(r io.Reader) (map[int]string, error) {
	out := map[int]string{}
	var (
		lines     int
		cpus      int
		headerErr error
		f         = getFields()
	)
	defer func() { putFields(f) }()
	err := scanLines(r, func(n int, line string) error {
		lines = n
		if headerErr != nil {
			return nil
		}
		if n > 1 && !irqLabelLine(line) {
			return nil // NMI:, LOC:, ERR: …, without splitting the line
		}
		f = appendFields(f[:0], line)
		if n == 1 {
			cpus = len(f)
			if cpus == 0 || !strings.HasPrefix(strings.TrimSpace(line), "CPU") {
				headerErr = fmt.Errorf("%w: /proc/interrupts: header %q does not list CPUs", ErrFileParse, line)
			}
			return nil
		}
		if len(f) == 0 || !strings.HasSuffix(f[0], ":") {
			return nil
		}
		irq, err := strconv.Atoi(strings.TrimSuffix(f[0], ":"))
		if err != nil {
			return nil // NMI:, LOC:, ERR: …
		}
		// A device line has the counts, a chip name, the hwirq/trigger and
		// at least one action; an IRQ with no action yet has fewer columns.
		if len(f) < 1+cpus+3 {
			return nil
		}
		out[irq] = f[len(f)-1]
		return nil
	})
	switch {
	case headerErr != nil:
		return nil, headerErr
	case err != nil:
		return nil, fmt.Errorf("/proc/interrupts: %w", err)
	case lines == 0:
		return nil, fmt.Errorf("%w: /proc/interrupts: empty", ErrFileParse)
	}
	return out, nil
}

// readDirNames lists the entries of a directory but "." and "..", in the
// order the file system gives them. It is os.ReadDir without the runtime
// poller's registration and the per-entry values, for small sysfs
// directories read on every snapshot.
func readDirNames(path string) ([]string, error) {
	fd, err := openat(unix.AT_FDCWD, path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC)
	if err != nil {
		return nil, &iofs.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	var buf [4096]byte
	var names []string
	for {
		n, err := unix.ReadDirent(fd, buf[:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &iofs.PathError{Op: "readdirent", Path: path, Err: err}
		}
		if n <= 0 {
			return names, nil
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
}

// irqLabelLine reports whether the first field of a /proc/interrupts line
// may be a numbered IRQ label ("41:"), as parseIRQNames would find after
// splitting the line: false only for ASCII lines whose first field is
// not a number and a colon.
func irqLabelLine(line string) bool {
	i := 0
	for i < len(line) && isSpace(line[i]) {
		i++
	}
	j := i
	for j < len(line) && !isSpace(line[j]) {
		if line[j] >= 0x80 {
			return true // leave Unicode to the full split
		}
		j++
	}
	for k := j; k < len(line); k++ {
		if line[k] >= 0x80 {
			return true
		}
	}
	label, ok := strings.CutSuffix(line[i:j], ":")
	if !ok {
		return false
	}
	_, err := strconv.Atoi(label)
	return err == nil
}
