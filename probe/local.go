package probe

import (
	"context"
	"fmt"
	"net"
)

// localServer is what a local run needs of a receiver, UDP or TCP.
type localServer interface {
	Serve(ctx context.Context) error
	Close() error
}

// RunLocal runs a receiver and a sender on this host over loopback (or the
// address in listen, "127.0.0.1:0" when empty) and returns the report. Both
// ends share CLOCK_MONOTONIC, so one-way latency is exact.
func RunLocal(ctx context.Context, listen string, scfg ServerConfig, ccfg ClientConfig) (Report, error) {
	return runLocal(ctx, listen, scfg, ccfg,
		func(addr string, cfg ServerConfig) (localServer, net.Addr, error) {
			srv, err := ListenUDP(addr, cfg)
			if err != nil {
				return nil, nil, err
			}
			return srv, srv.Addr(), nil
		},
		func(ctx context.Context, addr string, cfg ClientConfig) (Report, error) {
			conn, err := DialUDP(addr)
			if err != nil {
				return Report{}, err
			}
			defer conn.Close()
			return RunUDP(ctx, conn, cfg)
		})
}

// RunLocalTCP is RunLocal over a TCP connection on loopback.
func RunLocalTCP(ctx context.Context, listen string, scfg ServerConfig, ccfg ClientConfig) (Report, error) {
	return runLocal(ctx, listen, scfg, ccfg,
		func(addr string, cfg ServerConfig) (localServer, net.Addr, error) {
			srv, err := ListenTCP(addr, cfg)
			if err != nil {
				return nil, nil, err
			}
			return srv, srv.Addr(), nil
		},
		func(ctx context.Context, addr string, cfg ClientConfig) (Report, error) {
			conn, err := DialTCP(addr)
			if err != nil {
				return Report{}, err
			}
			defer conn.Close()
			return RunTCP(ctx, conn, cfg)
		})
}

// runLocal starts the receiver, runs the sender against it and returns the
// sender's report, with the receiver's error joined to the sender's.
func runLocal(ctx context.Context, listen string, scfg ServerConfig, ccfg ClientConfig,
	listenFn func(string, ServerConfig) (localServer, net.Addr, error),
	runFn func(context.Context, string, ClientConfig) (Report, error)) (Report, error) {
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	scfg.Clock = ClockMonotonic
	scfg.Once = true
	ccfg.Collect = nil // one host: the receiver reads the same counters
	ccfg.Tracer, ccfg.Via = nil, nil
	if scfg.Host == nil {
		scfg.Host = HostOf("")
	}
	if scfg.Host == nil {
		scfg.Host = &HostID{Boot: "this host"}
	}
	ccfg.Host = scfg.Host
	srv, bound, err := listenFn(listen, scfg)
	if err != nil {
		return Report{}, err
	}
	defer srv.Close()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(sctx) }()

	rep, err := runFn(ctx, loopbackIfUnspecified(bound), ccfg)
	cancel()
	serr := <-errc
	switch {
	case err != nil && serr != nil:
		return Report{}, fmt.Errorf("%w (server: %v)", err, serr)
	case err != nil:
		return Report{}, err
	}
	return rep, serr
}

// loopbackIfUnspecified turns a wildcard bound address into the IPv4
// loopback address with the same port, for the local sender to dial.
func loopbackIfUnspecified(a net.Addr) string {
	var ip net.IP
	var port int
	switch a := a.(type) {
	case *net.UDPAddr:
		ip, port = a.IP, a.Port
	case *net.TCPAddr:
		ip, port = a.IP, a.Port
	default:
		return a.String()
	}
	if ip.IsUnspecified() {
		ip = net.IPv4(127, 0, 0, 1)
	}
	return net.JoinHostPort(ip.String(), fmt.Sprint(port))
}
