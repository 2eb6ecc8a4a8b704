package lab

// hookdrop's objects (the tc and XDP programs of the receive-side hook
// scenarios) are committed so that `go build` needs no clang; .ci/bpf-check
// regenerates them and fails when they differ from the committed ones.
//go:generate go tool bpf2go -tags linux -cc clang -cflags "-O2 -g -Wall -Werror" hookdrop testdata/bpf/hookdrop.c
