package probe

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"testing"
	"time"
)

// BenchmarkVsIperf3 compares the probe's sender with iperf3 on loopback with
// 64-byte UDP payloads, side by side in one run. Each round runs iperf3
// exactly as `iperf3 -u -b 0 -l 64` (its default buffers; with -w 4M it was
// slower here), then the probe for the same duration: at full speed with
// sendmmsg and with UDP GSO, and paced at 1.5 times what iperf3 sent in that
// round, with sendmmsg and with GSO. The paced runs answer "1.5x iperf3 with
// the receiver keeping up": their loss should be about zero and their
// receive rate equal to their send rate. The probe's receiver uses a 4 MiB
// buffer. Medians over the rounds are reported.
//
//	go test ./probe -run '^$' -bench VsIperf3 -benchtime 1x
//
// NETDROP_BENCH_ROUNDS and NETDROP_BENCH_SECONDS change the defaults (3
// rounds of 2 s). On a shared machine the numbers move with the load of
// other processes; only ratios within one run mean anything.
func BenchmarkVsIperf3(b *testing.B) {
	iperf, err := exec.LookPath("iperf3")
	if err != nil {
		b.Skip("needs iperf3 (apt-get install iperf3) as the reference")
	}
	rounds := envInt("NETDROP_BENCH_ROUNDS", 3)
	secs := envInt("NETDROP_BENCH_SECONDS", 2)
	dur := time.Duration(secs) * time.Second
	const buf = 4 << 20
	var ipTx, ipRx, pTx, pRx, gTx, gRx, kTx, kRx, kLoss, mTx, mRx, mLoss []float64
	for b.Loop() {
		for r := range rounds {
			tx, rx, err := runIperf3(iperf, secs)
			if err != nil {
				b.Fatal(err)
			}
			ipTx, ipRx = append(ipTx, tx), append(ipRx, rx)
			b.Logf("round %d iperf3: sent %.0f/s received %.0f/s", r, tx, rx)
			// At full speed with sendmmsg and with GSO, then paced at 1.5x
			// what iperf3 sent in this round: does the receiver keep up?
			for _, v := range []struct {
				name     string
				gso      bool
				rate     float64
				tx, rx   *[]float64
				lossPcts *[]float64
			}{
				{"sendmmsg max", false, 0, &pTx, &pRx, nil},
				{"gso max", true, 0, &gTx, &gRx, nil},
				{"sendmmsg paced 1.5x iperf3", false, 1.5 * tx, &mTx, &mRx, &mLoss},
				{"gso paced 1.5x iperf3", true, 1.5 * tx, &kTx, &kRx, &kLoss},
			} {
				rep, err := RunLocal(context.Background(), "", ServerConfig{RcvBuf: buf, GRO: v.gso},
					ClientConfig{Size: 64, Duration: dur, SndBuf: buf, GSO: v.gso, Rate: v.rate})
				if err != nil {
					b.Fatal(err)
				}
				ptx := rep.Send.Rate
				prx := float64(rep.Received) / rep.Send.Elapsed.Seconds()
				*v.tx, *v.rx = append(*v.tx, ptx), append(*v.rx, prx)
				if v.lossPcts != nil {
					*v.lossPcts = append(*v.lossPcts, rep.LossPercent)
				}
				b.Logf("round %d probe %s: sent %.0f/s received %.0f/s lost %d (%.2f%%)", r, v.name, ptx, prx, rep.Lost, rep.LossPercent)
			}
		}
	}
	b.ReportMetric(median(ipTx), "iperf3-sent/s")
	b.ReportMetric(median(ipRx), "iperf3-recv/s")
	b.ReportMetric(median(pTx), "probe-sent/s")
	b.ReportMetric(median(pRx), "probe-recv/s")
	b.ReportMetric(median(gTx), "probe-gso-sent/s")
	b.ReportMetric(median(gRx), "probe-gso-recv/s")
	b.ReportMetric(median(mTx), "probe-paced-sent/s")
	b.ReportMetric(median(mLoss), "probe-paced-loss-%")
	b.ReportMetric(median(kTx), "probe-gso-paced-sent/s")
	b.ReportMetric(median(kLoss), "probe-gso-paced-loss-%")
	b.ReportMetric(median(pTx)/median(ipTx), "x-iperf3-sendmmsg")
	b.ReportMetric(median(gRx)/median(ipTx), "x-iperf3-gso-recv")
	b.ReportMetric(median(mRx)/median(ipTx), "x-iperf3-paced-recv")
	b.ReportMetric(median(kRx)/median(ipTx), "x-iperf3-gso-paced-recv")
	b.ReportMetric(0, "ns/op")
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// runIperf3 runs one iperf3 UDP test on loopback and returns the sender's
// and the receiver's datagrams per second.
func runIperf3(iperf string, secs int) (tx, rx float64, err error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, 0, err
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	srv := exec.Command(iperf, "-s", "-1", "-B", "127.0.0.1", "-p", port)
	if err := srv.Start(); err != nil {
		return 0, 0, err
	}
	defer func() { srv.Process.Kill(); srv.Wait() }()
	var out []byte
	for range 50 { // wait for the server to listen
		time.Sleep(50 * time.Millisecond)
		out, err = exec.Command(iperf, "-c", "127.0.0.1", "-p", port, "-u", "-b", "0", "-l", "64",
			"-t", strconv.Itoa(secs), "-J").Output()
		if err == nil {
			break
		}
	}
	if err != nil {
		return 0, 0, fmt.Errorf("iperf3 client: %w: %s", err, out)
	}
	var res struct {
		End struct {
			Sent struct {
				Seconds float64 `json:"seconds"`
				Packets float64 `json:"packets"`
			} `json:"sum_sent"`
			Received struct {
				Seconds float64 `json:"seconds"`
				Packets float64 `json:"packets"`
				Lost    float64 `json:"lost_packets"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return 0, 0, fmt.Errorf("iperf3 -J: %w", err)
	}
	s, r := res.End.Sent, res.End.Received
	if s.Seconds == 0 || r.Seconds == 0 {
		return 0, 0, fmt.Errorf("iperf3 -J: no sum_sent/sum_received (iperf3 older than 3.10?)")
	}
	return s.Packets / s.Seconds, (r.Packets - r.Lost) / r.Seconds, nil
}
