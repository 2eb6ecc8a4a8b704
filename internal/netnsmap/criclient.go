package netnsmap

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"

	"google.golang.org/protobuf/encoding/protowire"
)

// criClient asks a CRI runtime the three RuntimeService questions netnsmap
// needs (ListPodSandbox, ListContainers, PodSandboxStatus) as unary gRPC
// calls: HTTP/2 without TLS on the runtime's unix socket, through net/http,
// and the few message fields read or written with protowire, by the field
// numbers of k8s.io/cri-api's api.proto (runtime.v1).
//
// The gRPC library and cri-api's generated types are not linked for this:
// their package inits (protobuf descriptors of the whole CRI API, gRPC's
// registries and regexps) ran at every start of every command, 125 page
// faults and 2.2 MB of peak RSS of `netdrop --help`, for a question only
// the namespace map asks.
type criClient struct {
	tr *http.Transport
	hc *http.Client
}

// criPath is the gRPC method path prefix of the CRI runtime service.
const criPath = "http://localhost/runtime.v1.RuntimeService/"

// criMaxMessage bounds a reply, as gRPC's default receive limit does.
const criMaxMessage = 4 << 20

func newCRIClient(sock string) *criClient {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true) // gRPC: HTTP/2 with prior knowledge
	tr := &http.Transport{
		Protocols: &p,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
		DisableCompression: true,
	}
	return &criClient{tr: tr, hc: &http.Client{Transport: tr}}
}

// close drops the connection.
func (c *criClient) close() { c.tr.CloseIdleConnections() }

// Status codes of gRPC (google.golang.org/grpc/codes) that criError tells
// apart or that the client itself sets.
type rpcStatus uint32

const (
	codeOK               rpcStatus = 0
	codeCanceled         rpcStatus = 1
	codeUnknown          rpcStatus = 2
	codeDeadlineExceeded rpcStatus = 4
	codeResourceExhaust  rpcStatus = 8
	codeUnimplemented    rpcStatus = 12
	codeInternal         rpcStatus = 13
	codeUnavailable      rpcStatus = 14
	codePermissionDenied rpcStatus = 7
	codeUnauthenticated  rpcStatus = 16
)

// rpcStatusNames are the codes' names, as gRPC prints them (an array:
// static data, no work at package init).
var rpcStatusNames = [...]string{
	"OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound",
	"AlreadyExists", "PermissionDenied", "ResourceExhausted", "FailedPrecondition",
	"Aborted", "OutOfRange", "Unimplemented", "Internal", "Unavailable", "DataLoss",
	"Unauthenticated",
}

func (s rpcStatus) String() string {
	if int(s) < len(rpcStatusNames) {
		return rpcStatusNames[s]
	}
	return "Code(" + strconv.FormatUint(uint64(s), 10) + ")"
}

// rpcError is a failed call, worded as gRPC words it ("rpc error: code =
// Unavailable desc = ..."); err is the transport's error, when there was
// one, kept in the chain (a refused dial says os.ErrPermission).
type rpcError struct {
	code rpcStatus
	desc string
	err  error
}

func (e *rpcError) Error() string {
	desc := e.desc
	if e.err != nil {
		desc = e.err.Error()
	}
	return fmt.Sprintf("rpc error: code = %s desc = %s", e.code, desc)
}

func (e *rpcError) Unwrap() error { return e.err }

// rpcCode is the gRPC status of err: Unknown for an error that is not a
// call's.
func rpcCode(err error) rpcStatus {
	var re *rpcError
	if errors.As(err, &re) {
		return re.code
	}
	return codeUnknown
}

// call makes one unary call: req is the request message's encoding, the
// reply message's is returned.
func (c *criClient) call(ctx context.Context, method string, req []byte) ([]byte, error) {
	// A gRPC message: compressed flag, big-endian length, message.
	body := make([]byte, 5+len(req))
	binary.BigEndian.PutUint32(body[1:5], uint32(len(req)))
	copy(body[5:], req)
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, criPath+method, bytes.NewReader(body))
	if err != nil {
		return nil, &rpcError{code: codeInternal, err: err}
	}
	hr.Header.Set("Content-Type", "application/grpc")
	hr.Header.Set("Te", "trailers")
	resp, err := c.hc.Do(hr)
	if err != nil {
		return nil, transportError(ctx, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, &rpcError{code: httpStatusCode(resp.StatusCode), desc: "unexpected HTTP status code " + strconv.Itoa(resp.StatusCode)}
	}
	// One message: compressed flag, big-endian length, message; then the
	// end of the stream, after which the trailers are known.
	var (
		hdr [5]byte
		msg []byte
	)
	_, err = io.ReadFull(resp.Body, hdr[:])
	switch {
	case err == io.EOF: // no message: a refusal carries only a status
	case err != nil:
		return nil, transportError(ctx, err)
	case hdr[0] != 0:
		return nil, &rpcError{code: codeInternal, desc: "compressed reply, none was accepted"}
	default:
		n := binary.BigEndian.Uint32(hdr[1:5])
		if n > criMaxMessage {
			return nil, &rpcError{code: codeResourceExhaust, desc: fmt.Sprintf("received message larger than max (%d vs. %d)", n, criMaxMessage)}
		}
		msg = make([]byte, n)
		if _, err := io.ReadFull(resp.Body, msg); err != nil {
			return nil, transportError(ctx, err)
		}
		// A unary reply holds one message. Anything after it is refused,
		// as gRPC refuses it, instead of read without bound until the
		// runtime stops sending or the timeout ends the call.
		var more [1]byte
		switch n, err := io.ReadFull(resp.Body, more[:]); {
		case n > 0:
			return nil, &rpcError{code: codeInternal, desc: "more than one message in a unary reply"}
		case err != io.EOF:
			return nil, transportError(ctx, err)
		}
	}
	// The status comes in the trailers, or in the headers of a reply
	// without a message (a refusal).
	st := resp.Trailer.Get("Grpc-Status")
	desc := resp.Trailer.Get("Grpc-Message")
	if st == "" {
		st, desc = resp.Header.Get("Grpc-Status"), resp.Header.Get("Grpc-Message")
	}
	code, err := strconv.ParseUint(st, 10, 32)
	if err != nil {
		return nil, &rpcError{code: codeInternal, desc: fmt.Sprintf("malformed grpc-status %q", st)}
	}
	if rpcStatus(code) != codeOK {
		if d, err := url.PathUnescape(desc); err == nil {
			desc = d // grpc-message is percent-encoded
		}
		return nil, &rpcError{code: rpcStatus(code), desc: desc}
	}
	if msg == nil {
		return nil, &rpcError{code: codeInternal, desc: "reply without a message"}
	}
	return msg, nil
}

// transportError is the status gRPC gives a call that could not be made or
// finished: the context's end, else Unavailable (nothing listens, the
// socket is refused, the runtime hung up).
func transportError(ctx context.Context, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // not the request's method and URL, which are ours
	}
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return &rpcError{code: codeDeadlineExceeded, err: err}
	case ctx.Err() != nil:
		return &rpcError{code: codeCanceled, err: err}
	}
	return &rpcError{code: codeUnavailable, err: err}
}

// httpStatusCode maps a non-200 HTTP status to a gRPC code, as gRPC does.
func httpStatusCode(status int) rpcStatus {
	switch status {
	case http.StatusBadRequest:
		return codeInternal
	case http.StatusUnauthorized:
		return codeUnauthenticated
	case http.StatusForbidden:
		return codePermissionDenied
	case http.StatusNotFound:
		return codeUnimplemented
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return codeUnavailable
	}
	return codeUnknown
}

// criSandbox is the part of a runtime.v1.PodSandbox netnsmap reads.
type criSandbox struct {
	id                   string
	name, uid, namespace string // PodSandboxMetadata
}

// criContainer is the part of a runtime.v1.Container netnsmap reads.
type criContainer struct {
	id, sandboxID string
	name          string // ContainerMetadata
}

// listPodSandbox lists the ready pod sandboxes: ListPodSandboxRequest
// {filter(1): PodSandboxFilter{state(2): PodSandboxStateValue{state(1):
// SANDBOX_READY}}}. SANDBOX_READY is 0, the value proto3 leaves out, so the
// state message is present and empty.
func (c *criClient) listPodSandbox(ctx context.Context) ([]*criSandbox, error) {
	state := protowire.AppendTag(nil, 2, protowire.BytesType)
	state = protowire.AppendBytes(state, nil)
	req := protowire.AppendTag(nil, 1, protowire.BytesType)
	req = protowire.AppendBytes(req, state)
	b, err := c.call(ctx, "ListPodSandbox", req)
	if err != nil {
		return nil, err
	}
	var out []*criSandbox
	// ListPodSandboxResponse{items(1): PodSandbox{id(1), metadata(2):
	// PodSandboxMetadata{name(1), uid(2), namespace(3)}}}
	err = eachField(b, func(num protowire.Number, v []byte) error {
		if num != 1 {
			return nil
		}
		sb := &criSandbox{}
		out = append(out, sb)
		return eachField(v, func(num protowire.Number, v []byte) error {
			switch num {
			case 1:
				sb.id = string(v)
			case 2:
				return eachField(v, func(num protowire.Number, v []byte) error {
					switch num {
					case 1:
						sb.name = string(v)
					case 2:
						sb.uid = string(v)
					case 3:
						sb.namespace = string(v)
					}
					return nil
				})
			}
			return nil
		})
	})
	if err != nil {
		return nil, &rpcError{code: codeInternal, desc: "ListPodSandboxResponse: " + err.Error()}
	}
	return out, nil
}

// listContainers lists every container: an empty ListContainersRequest.
func (c *criClient) listContainers(ctx context.Context) ([]*criContainer, error) {
	b, err := c.call(ctx, "ListContainers", nil)
	if err != nil {
		return nil, err
	}
	var out []*criContainer
	// ListContainersResponse{containers(1): Container{id(1),
	// pod_sandbox_id(2), metadata(3): ContainerMetadata{name(1)}}}
	err = eachField(b, func(num protowire.Number, v []byte) error {
		if num != 1 {
			return nil
		}
		ct := &criContainer{}
		out = append(out, ct)
		return eachField(v, func(num protowire.Number, v []byte) error {
			switch num {
			case 1:
				ct.id = string(v)
			case 2:
				ct.sandboxID = string(v)
			case 3:
				return eachField(v, func(num protowire.Number, v []byte) error {
					if num == 1 {
						ct.name = string(v)
					}
					return nil
				})
			}
			return nil
		})
	})
	if err != nil {
		return nil, &rpcError{code: codeInternal, desc: "ListContainersResponse: " + err.Error()}
	}
	return out, nil
}

// sandboxInfo asks a sandbox's verbose status and returns its "info" entry
// (JSON); ok is false when the runtime sends none. PodSandboxStatusRequest
// {pod_sandbox_id(1), verbose(2)}; PodSandboxStatusResponse{info(2):
// map<string, string>, whose entries are {key(1), value(2)}}.
func (c *criClient) sandboxInfo(ctx context.Context, id string) (info string, ok bool, err error) {
	req := protowire.AppendTag(nil, 1, protowire.BytesType)
	req = protowire.AppendString(req, id)
	req = protowire.AppendTag(req, 2, protowire.VarintType)
	req = protowire.AppendVarint(req, 1)
	b, err := c.call(ctx, "PodSandboxStatus", req)
	if err != nil {
		return "", false, err
	}
	err = eachField(b, func(num protowire.Number, v []byte) error {
		if num != 2 {
			return nil
		}
		var key, value string
		if err := eachField(v, func(num protowire.Number, v []byte) error {
			switch num {
			case 1:
				key = string(v)
			case 2:
				value = string(v)
			}
			return nil
		}); err != nil {
			return err
		}
		if key == "info" {
			info, ok = value, true
		}
		return nil
	})
	if err != nil {
		return "", false, &rpcError{code: codeInternal, desc: "PodSandboxStatusResponse: " + err.Error()}
	}
	return info, ok, nil
}

// eachField calls fn with the number and bytes of every length-delimited
// field of the protobuf message b (strings, bytes, messages, map entries),
// and skips fields of other wire types.
func eachField(b []byte, fn func(protowire.Number, []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if typ != protowire.BytesType {
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return protowire.ParseError(n)
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if err := fn(num, v); err != nil {
			return err
		}
	}
	return nil
}
