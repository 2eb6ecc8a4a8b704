package droptrace

// The objects are committed so that `go build` needs no clang; .ci/bpf-check
// regenerates them and fails when they differ from the committed ones.
//go:generate go tool bpf2go -tags linux -type drop_key -type flow -type flow_key -type event -cc clang -cflags "-O2 -g -Wall -Werror" droptrace bpf/droptrace.c -- -I./bpf
