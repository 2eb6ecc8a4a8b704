# The netdrop image the DaemonSet in deploy/kubernetes runs:
#   make image        (or: docker build -t ghcr.io/netdrop/netdrop:latest .)
#
# A static binary (CGO_ENABLED=0, -trimpath) on an empty base: no shell, no
# libc, no package manager, nothing to patch but netdrop itself, plus the CA
# bundle for --otlp and fleet --prometheus over https. The image runs as
# nobody by default. Run as nobody with no capability, the exporter reads
# every counter source but nftables rule counters. The Helm chart runs it as
# root with every capability dropped but those its flags need (Kubernetes
# gives added capabilities only to root: a non-root process loses them at
# exec without ambient capabilities):
#   NET_ADMIN          nftables rule counters (nfnetlink refuses without it)
#   BPF, PERFMON       --trace: load the eBPF program, attach to skb:kfree_skb
#   SYSLOG             --trace: kernel addresses in /proc/kallsyms, to name the
#                      dropping function (unless perf_event_paranoid <= 1)
#   SYS_ADMIN          --netns: enter another network namespace (setns)
#   SYS_PTRACE         --netns pid:N: open /proc/N/ns/net of another process
# deploy/caps_linux_test.go runs the binary with exactly these and with each
# taken away. deploy/dockerfile_test.go runs this file's build commands.

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# What the binary says in `netdrop version` and netdrop_build_info: the
# Makefile passes the VCS facts, since .git is not in the build context.
ARG VERSION=(devel)
ARG REVISION=
ARG REVTIME=
ARG MODIFIED=
ARG TARGETOS=linux
ARG TARGETARCH
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -buildvcs=false \
      -ldflags "-s -w \
        -X 'github.com/netdrop/netdrop/internal/buildinfo.version=$VERSION' \
        -X github.com/netdrop/netdrop/internal/buildinfo.revision=$REVISION \
        -X github.com/netdrop/netdrop/internal/buildinfo.revisionTime=$REVTIME \
        -X github.com/netdrop/netdrop/internal/buildinfo.modified=$MODIFIED" \
      -o /out/netdrop ./cmd/netdrop

FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/netdrop /usr/bin/netdrop
# nobody:nogroup; numeric, as scratch has no /etc/passwd.
USER 65534:65534
# The exporter's port; the image runs `netdrop` (diagnose) unless told
# otherwise, as the binary does: the DaemonSet passes `exporter ...`.
EXPOSE 9469
ENTRYPOINT ["/usr/bin/netdrop"]
