package cli

import (
	"testing"
	"time"
)

func TestParseWhen(t *testing.T) {
	start := time.Date(2026, 12, 5, 13, 43, 27, 500e6, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Time
		bad  bool
	}{
		{in: "", want: time.Time{}},
		{in: "+10s", want: start.Add(10 * time.Second)},
		{in: "+1m30s", want: start.Add(90 * time.Second)},
		{in: "2026-12-05T13:50:00Z", want: time.Date(2026, 12, 5, 13, 50, 0, 0, time.UTC)},
		{in: "2026-12-05T14:50:00+01:00", want: time.Date(2026, 12, 5, 13, 50, 0, 0, time.UTC)},
		{in: "13:45", want: time.Date(2026, 12, 5, 13, 45, 0, 0, time.UTC)},
		{in: "13:45:07", want: time.Date(2026, 12, 5, 13, 45, 7, 0, time.UTC)},
		{in: "+ten", bad: true},
		{in: "yesterday", bad: true},
		{in: "25:00", bad: true},
	} {
		got, err := parseWhen(tc.in, start)
		if tc.bad {
			if err == nil {
				t.Errorf("parseWhen(%q) = %v, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("parseWhen(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestByteSize(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "65536": 65536, "64KiB": 64 << 10, "16MiB": 16 << 20, "2G": 2 << 30, "512k": 512 << 10, "1GiB": 1 << 30} {
		var b byteSize
		if err := b.Set(in); err != nil || int64(b) != want {
			t.Errorf("Set(%q) = %d, %v; want %d", in, b, err, want)
		}
	}
	for _, in := range []string{"", "-1", "12XB", "MiB", "99999999999G"} {
		var b byteSize
		if err := b.Set(in); err == nil {
			t.Errorf("Set(%q) = %d, want an error", in, b)
		}
	}
}
