package probe

import (
	"context"
	"fmt"
	"net"
)

// RunLocal runs a receiver and a sender on this host over loopback (or the
// address in listen, "127.0.0.1:0" when empty) and returns the report. Both
// ends share CLOCK_MONOTONIC, so one-way latency is exact.
func RunLocal(ctx context.Context, listen string, scfg ServerConfig, ccfg ClientConfig) (Report, error) {
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	scfg.Clock = ClockMonotonic
	scfg.Once = true
	ccfg.Collect = nil // one host: the receiver reads the same counters
	srv, err := ListenUDP(listen, scfg)
	if err != nil {
		return Report{}, err
	}
	defer srv.Close()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(sctx) }()

	addr := srv.Addr()
	if addr.IP.IsUnspecified() {
		addr = &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: addr.Port}
	}
	conn, err := DialUDP(addr.String())
	if err != nil {
		return Report{}, err
	}
	defer conn.Close()
	rep, err := RunUDP(ctx, conn, ccfg)
	if err != nil {
		cancel()
		if serr := <-errc; serr != nil {
			return Report{}, fmt.Errorf("%w (server: %v)", err, serr)
		}
		return Report{}, err
	}
	cancel()
	if err := <-errc; err != nil {
		return rep, err
	}
	return rep, nil
}
