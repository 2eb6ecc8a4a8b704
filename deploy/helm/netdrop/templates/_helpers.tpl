{{/* The chart's name, or nameOverride. */}}
{{- define "netdrop.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Object names: the release, then the chart's name unless the release already says it. */}}
{{- define "netdrop.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "netdrop.selectorLabels" -}}
app.kubernetes.io/name: {{ include "netdrop.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: exporter
{{- end }}

{{- define "netdrop.labels" -}}
{{ include "netdrop.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{/*
The capabilities the exporter's flags need, and no more. Each one is
checked by deploy's TestCapabilities, which runs the binary with exactly
this set and with each one taken away:
  NET_ADMIN            nftables rule counters (nfnetlink refuses without it)
  BPF, PERFMON         --trace: load the program, attach to skb:kfree_skb
  SYSLOG               --trace: read kernel symbol addresses from
                       /proc/kallsyms to name the dropping function
  SYS_ADMIN            --netns: setns into another network namespace
  SYS_PTRACE           --netns pid:N: open another process's /proc/N/ns/net
  SYS_ADMIN, SYS_PTRACE
                       allNetns (--all-netns): read every process's
                       /proc/PID/ns/net, setns into each namespace
*/}}
{{- define "netdrop.capabilities" -}}
{{- $caps := list "NET_ADMIN" }}
{{- if .Values.exporter.trace }}
{{- $caps = concat $caps (list "BPF" "PERFMON" "SYSLOG") }}
{{- end }}
{{- if or .Values.exporter.netns .Values.allNetns.enabled }}
{{- $caps = append $caps "SYS_ADMIN" }}
{{- end }}
{{- if include "netdrop.hostPID" . }}
{{- $caps = append $caps "SYS_PTRACE" }}
{{- end }}
{{- toJson $caps }}
{{- end }}

{{/* Whether --netns names a namespace under the host's /run/netns. */}}
{{- define "netdrop.netnsNamed" -}}
{{- with .Values.exporter.netns }}{{ if not (or (hasPrefix "pid:" .) (hasPrefix "/" .)) }}true{{ end }}{{ end }}
{{- end }}

{{/*
Whether the pod needs the node's process table: --netns pid:N names a
process of the node, and --all-netns finds the namespaces through every
process's /proc/PID/ns/net.
*/}}
{{- define "netdrop.hostPID" -}}
{{- if or (hasPrefix "pid:" .Values.exporter.netns) .Values.allNetns.enabled }}true{{ end }}
{{- end }}

{{/*
Where the CRI runtime socket's directory is mounted in the container, for
--all-netns; the socket keeps its name under it.
*/}}
{{- define "netdrop.criDir" -}}
/run/netdrop/cri
{{- end }}
