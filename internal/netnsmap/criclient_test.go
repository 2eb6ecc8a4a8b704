package netnsmap

import (
	"context"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netdrop/netdrop/internal/netnsmap/netnsmaptest"
	"google.golang.org/protobuf/encoding/protowire"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The client's messages against the real gRPC server and cri-api types:
// every field netnsmap reads arrives, the READY filter is applied by the
// server, and the verbose status's info entry is found among others.
func TestCRIClientAgainstGRPC(t *testing.T) {
	info := `{"pid":42}`
	fake := &netnsmaptest.CRI{
		Sandboxes: []*cri.PodSandbox{
			netnsmaptest.Sandbox("sb-ready", "shop", "web-0", "uid-0", cri.PodSandboxState_SANDBOX_READY),
			netnsmaptest.Sandbox("sb-gone", "shop", "web-old", "uid-1", cri.PodSandboxState_SANDBOX_NOTREADY),
		},
		Containers: []*cri.Container{
			{Id: "c-1", PodSandboxId: "sb-ready", Metadata: &cri.ContainerMetadata{Name: "web", Attempt: 3}, Image: &cri.ImageSpec{Image: "nginx"}, Labels: map[string]string{"a": "b"}},
		},
		Info: map[string]string{"sb-ready": info},
	}
	c := newCRIClient(netnsmaptest.Serve(t, fake))
	defer c.close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	pods, err := c.listPodSandbox(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(pods) != 1 || *pods[0] != (criSandbox{id: "sb-ready", name: "web-0", uid: "uid-0", namespace: "shop"}) {
		t.Errorf("listPodSandbox = %+v, want the ready sandbox only", pods)
	}
	ctrs, err := c.listContainers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ctrs) != 1 || *ctrs[0] != (criContainer{id: "c-1", sandboxID: "sb-ready", name: "web"}) {
		t.Errorf("listContainers = %+v", ctrs)
	}
	for _, tt := range []struct {
		id   string
		want string
		ok   bool
	}{{"sb-ready", info, true}, {"sb-gone", "", false}} {
		got, ok, err := c.sandboxInfo(ctx, tt.id)
		if err != nil || got != tt.want || ok != tt.ok {
			t.Errorf("sandboxInfo(%s) = %q, %v, %v; want %q, %v", tt.id, got, ok, err, tt.want, tt.ok)
		}
	}
}

// A reply above gRPC's default 4 MiB receive limit is refused as gRPC
// refuses it, ResourceExhausted.
func TestCRIClientReplyLimit(t *testing.T) {
	fake := &netnsmaptest.CRI{}
	name := strings.Repeat("n", 200)
	for len(fake.Containers)*230 < criMaxMessage+(1<<20) {
		fake.Containers = append(fake.Containers, &cri.Container{Id: "c", Metadata: &cri.ContainerMetadata{Name: name}})
	}
	c := newCRIClient(netnsmaptest.Serve(t, fake))
	defer c.close()
	_, err := c.listContainers(context.Background())
	if rpcCode(err) != codeResourceExhaust {
		t.Errorf("listContainers of a %d-container reply: err %v, want ResourceExhausted", len(fake.Containers), err)
	}
}

func TestEachFieldMalformed(t *testing.T) {
	valid := protowire.AppendTag(nil, 1, protowire.BytesType)
	valid = protowire.AppendString(valid, "x")
	valid = protowire.AppendTag(valid, 2, protowire.VarintType)
	valid = protowire.AppendVarint(valid, 7)
	tests := []struct {
		name string
		b    []byte
		ok   bool
	}{
		{"empty", nil, true},
		{"string and varint", valid, true},
		{"truncated string", valid[:2], false},
		{"tag only", []byte{0x0a}, false},
		{"bad tag", []byte{0x80}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var seen []protowire.Number
			err := eachField(tt.b, func(n protowire.Number, _ []byte) error {
				seen = append(seen, n)
				return nil
			})
			if (err == nil) != tt.ok {
				t.Errorf("err = %v, want ok %v", err, tt.ok)
			}
			if tt.ok && len(tt.b) > 0 && (len(seen) != 1 || seen[0] != 1) {
				t.Errorf("fields %v, want the one length-delimited field 1", seen)
			}
		})
	}
}

// A reply that goes on after its message (a second message, or a stream
// that does not end) is refused as gRPC refuses it, Internal, after one
// byte more, not read to its end.
func TestCRIClientOneMessage(t *testing.T) {
	msg := func(payload []byte) []byte {
		b := []byte{0, 0, 0, 0, byte(len(payload))}
		return append(b, payload...)
	}
	one := protowire.AppendTag(nil, 1, protowire.BytesType)
	one = protowire.AppendBytes(one, protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), "c-1"))
	tests := []struct {
		name     string
		messages int
		forever  bool
		want     rpcStatus
	}{
		{"one message", 1, false, codeOK},
		{"two messages", 2, false, codeInternal},
		{"endless", 1, true, codeInternal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sock := filepath.Join(t.TempDir(), "cri.sock")
			l, err := net.Listen("unix", sock)
			if err != nil {
				t.Fatal(err)
			}
			var p http.Protocols
			p.SetUnencryptedHTTP2(true)
			done := make(chan struct{})
			srv := &http.Server{Protocols: &p, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/grpc")
				w.Header().Set("Trailer", "Grpc-Status")
				for range tt.messages {
					w.Write(msg(one))
				}
				for tt.forever {
					if _, err := w.Write(make([]byte, 1<<10)); err != nil {
						break
					}
					w.(http.Flusher).Flush()
					select {
					case <-done:
						return
					default:
					}
				}
				w.Header().Set("Grpc-Status", "0")
			})}
			go srv.Serve(l)
			t.Cleanup(func() { close(done); srv.Close() })
			c := newCRIClient(sock)
			defer c.close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			ctrs, err := c.listContainers(ctx)
			if got := rpcCode(err); err == nil && tt.want != codeOK || err != nil && got != tt.want {
				t.Fatalf("listContainers: %v (code %v), want code %v", err, got, tt.want)
			}
			if err == nil && (len(ctrs) != 1 || ctrs[0].id != "c-1") {
				t.Errorf("listContainers = %+v, want c-1", ctrs)
			}
			if ctx.Err() != nil {
				t.Error("the call took the whole timeout")
			}
		})
	}
}
