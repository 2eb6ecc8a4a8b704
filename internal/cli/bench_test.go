package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
)

// TestBenchTransportJSON runs the command as a user would, on the two
// socket transports only (the shmring peer re-executes the netdrop binary,
// which a test binary is not), and checks the JSON it prints.
func TestBenchTransportJSON(t *testing.T) {
	var out, errb bytes.Buffer
	code := Main(context.Background(), []string{"bench", "transport", "--transport", "tcp,unix", "--sizes", "64,4K", "--duration", "20ms", "--json"}, &out, &errb)
	if code != ExitOK {
		t.Fatalf("exit %d, stderr %s", code, errb.String())
	}
	var r struct {
		Results []struct {
			Transport string  `json:"transport"`
			Size      int     `json:"size_bytes"`
			GBps      float64 `json:"throughput_gb_per_s"`
			P50       float64 `json:"latency_p50_us"`
			Error     string  `json:"error"`
		} `json:"results"`
	}
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out.String())
	}
	if len(r.Results) != 4 {
		t.Fatalf("%d results, want 4: %s", len(r.Results), out.String())
	}
	for _, res := range r.Results {
		if res.Error != "" || res.GBps <= 0 || res.P50 <= 0 {
			t.Errorf("%s %d: %+v", res.Transport, res.Size, res)
		}
	}
	// stderr is not a terminal: no live progress line (the terminal case
	// is tested through a pseudo-terminal in cmd/netdrop).
	if strings.ContainsAny(errb.String(), "\r\x1b") {
		t.Errorf("progress escapes on a stderr that is not a terminal: %q", errb.String())
	}
}

func TestBenchTransportBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"bench", "transport", "--sizes", "12Q"},
		{"bench", "transport", "--duration", "0s"},
		{"bench", "transport", "--transport", "carrier-pigeon"},
	} {
		var out, errb bytes.Buffer
		if code := Main(context.Background(), args, &out, &errb); code != ExitError {
			t.Errorf("%v: exit %d, want %d (stderr %q)", args, code, ExitError, errb.String())
		}
		if errb.Len() == 0 {
			t.Errorf("%v: no error message", args)
		}
	}
}
