// Package netnsmaptest serves a fake CRI runtime for tests of code that maps
// namespaces to pods: the real k8s.io/cri-api RuntimeService over gRPC on a
// unix socket, answering from data the test gives.
package netnsmaptest

import (
	"context"
	"net"
	"path/filepath"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// CRI is a runtime that knows the sandboxes and containers it is given.
type CRI struct {
	cri.UnimplementedRuntimeServiceServer
	Sandboxes  []*cri.PodSandbox
	Containers []*cri.Container
	// Info is each sandbox's verbose status "info" entry (JSON), by ID.
	Info map[string]string
	// StatusCalls counts PodSandboxStatus calls.
	StatusCalls atomic.Int64
}

// ListPodSandbox implements the CRI call, with its state filter.
func (f *CRI) ListPodSandbox(_ context.Context, req *cri.ListPodSandboxRequest) (*cri.ListPodSandboxResponse, error) {
	var out []*cri.PodSandbox
	for _, s := range f.Sandboxes {
		if st := req.GetFilter().GetState(); st != nil && st.GetState() != s.GetState() {
			continue
		}
		out = append(out, s)
	}
	return &cri.ListPodSandboxResponse{Items: out}, nil
}

// ListContainers implements the CRI call (no filter).
func (f *CRI) ListContainers(context.Context, *cri.ListContainersRequest) (*cri.ListContainersResponse, error) {
	return &cri.ListContainersResponse{Containers: f.Containers}, nil
}

// PodSandboxStatus implements the CRI call; Info answers verbose requests.
func (f *CRI) PodSandboxStatus(_ context.Context, req *cri.PodSandboxStatusRequest) (*cri.PodSandboxStatusResponse, error) {
	f.StatusCalls.Add(1)
	resp := &cri.PodSandboxStatusResponse{Status: &cri.PodSandboxStatus{Id: req.GetPodSandboxId()}}
	if info, ok := f.Info[req.GetPodSandboxId()]; ok && req.GetVerbose() {
		resp.Info = map[string]string{"info": info}
	}
	return resp, nil
}

// Serve serves srv on a unix socket in a temporary directory until the test
// ends, and returns the socket's path.
func Serve(t testing.TB, srv cri.RuntimeServiceServer) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "cri.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	cri.RegisterRuntimeServiceServer(g, srv)
	go g.Serve(ln)
	t.Cleanup(g.Stop)
	return sock
}

// Sandbox is a pod sandbox with its metadata.
func Sandbox(id, namespace, name, uid string, state cri.PodSandboxState) *cri.PodSandbox {
	return &cri.PodSandbox{Id: id, State: state, Metadata: &cri.PodSandboxMetadata{Namespace: namespace, Name: name, Uid: uid}}
}
