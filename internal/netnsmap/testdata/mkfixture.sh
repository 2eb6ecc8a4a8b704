#!/bin/bash
# Makes testdata/host: the /proc files of processes placed, on this machine,
# in network namespaces and cgroup v2 directories laid out as each runtime
# and the kubelet lay them out. Run as root under /tmp/nd-kernel.lock:
#   flock /tmp/nd-kernel.lock bash mkfixture.sh
# It copies each process's stat, cgroup and ns/net link, and the mount table,
# then removes every process, cgroup and namespace it made.
set -euo pipefail
cd "$(dirname "$0")"
cg=$(awk '$9 == "cgroup2" {print $5; exit}' /proc/self/mountinfo)
[ -n "$cg" ] || { echo "no cgroup2 mount" >&2; exit 1; }
id() { printf %s "$1" | sha256sum | cut -c1-64; }
uid() { local h; h=$(id "$1"); echo "${h:0:8}-${h:8:4}-${h:12:4}-${h:16:4}-${h:20:12}"; }
pa=$(uid pod-a) pc=$(uid pod-c) pd=$(uid pod-d)
layouts=(
  "a kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${pa//-/_}.slice/cri-containerd-$(id sandbox-a).scope"
  "a kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${pa//-/_}.slice/cri-containerd-$(id app-a).scope"
  "b system.slice/docker-$(id docker-b).scope"
  "c kubepods.slice/kubepods-pod${pc//-/_}.slice/crio-$(id app-c).scope"
  "c kubepods.slice/kubepods-pod${pc//-/_}.slice/crio-conmon-$(id app-c).scope"
  "d kubepods/besteffort/pod${pd}/$(id app-d)"
  "host machine.slice/libpod-$(id podman-host).scope"
  "host docker/$(id docker-host)"
  "host system.slice/ssh.service"
)
pids=() dirs=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for ((i=${#dirs[@]}-1; i>=0; i--)); do rmdir "${dirs[i]}" 2>/dev/null || true; done
  ip netns del pods-fx-a 2>/dev/null || true
  ip netns del pods-fx-c 2>/dev/null || true
}
trap cleanup EXIT
ip netns add pods-fx-a
ip netns add pods-fx-c
rm -rf host && mkdir -p host/proc/self/ns
declare -A bns
for l in "${layouts[@]}"; do
  ns=${l%% *} path=${l#* }
  # Every directory this made, outermost first, to remove innermost first.
  while read -r d; do dirs+=("${d#mkdir: created directory }"); done < <(mkdir -pv "$cg/$path" | tr -d "'")
  case $ns in
    a|c) ip netns exec "pods-fx-$ns" sleep 300 & ;;
    b|d) if [ -n "${bns[$ns]:-}" ]; then nsenter -t "${bns[$ns]}" -n sleep 300 & else unshare -n sleep 300 & fi ;;
    host) sleep 300 & ;;
  esac
  p=$!; pids+=("$p")
  [ "$ns" = b ] || [ "$ns" = d ] && bns[$ns]=${bns[$ns]:-$p}
  sleep 0.1
  echo "$p" > "$cg/$path/cgroup.procs"
done
sleep 0.2
for p in 1 2 "${pids[@]}"; do
  mkdir -p "host/proc/$p/ns"
  cp "/proc/$p/stat" "/proc/$p/cgroup" "host/proc/$p/"
  # PID 1 may be unreadable even to root (here: a supervisor that is not
  # dumpable); the fixture then has no link and the test denies it.
  l=$(readlink "/proc/$p/ns/net" || true)
  [ -z "$l" ] || ln -s "$l" "host/proc/$p/ns/net"
done
cp /proc/self/mountinfo host/proc/self/mountinfo
ln -s "$(readlink /proc/self/ns/net)" host/proc/self/ns/net
# A process that exits during the walk leaves a directory without files.
mkdir -p host/proc/999999
printf '%s\n' "pod-a $pa" "pod-c $pc" "pod-d $pd" > host/ids
for n in sandbox-a app-a docker-b app-c app-d podman-host docker-host; do echo "$n $(id $n)" >> host/ids; done
echo "pids ${pids[*]}" >> host/ids
