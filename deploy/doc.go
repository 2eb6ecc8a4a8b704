// Package deploy holds the tests of what deploy/ and the Dockerfile ship:
// the Helm chart linted and rendered with Helm's own packages, every
// rendered object decoded strictly into its Kubernetes (or Prometheus
// Operator) type, the plain manifests generated from the chart, the
// PrometheusRule checked to be netdrop-rules.yml itself, the Dockerfile's
// build commands run, and the capabilities the chart grants checked against
// the running binary.
//
// It is a module of its own so that Helm and the Kubernetes API types stay
// out of netdrop's go.mod: `cd deploy && go test ./...` (see .ci/run).
package deploy
