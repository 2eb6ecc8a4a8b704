package netnsmap

import (
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const (
	idA  = "315bbe38938f72661913b5ed4c645249fdb913219e9898d43a39ccb85abfe0f4"
	idB  = "f2524ca217411db466876bb97f8bc934e91fd8a11691a4bbde9b1fa49a65c9ed"
	uidA = "9bb860b4-a6e4-acf9-59da-f85d815086f4"
)

func TestParseCgroup(t *testing.T) {
	tests := []struct {
		path string
		want Cgroup
	}{
		{"/", Cgroup{}},
		{"/system.slice/ssh.service", Cgroup{}},
		{"/system.slice/docker.service", Cgroup{}},
		{"/system.slice/docker-" + idA + ".scope", Cgroup{Runtime: RuntimeDocker, ContainerID: idA}},
		{"/docker/" + idA, Cgroup{Runtime: RuntimeDocker, ContainerID: idA}},
		{"/machine.slice/libpod-" + idA + ".scope", Cgroup{Runtime: RuntimePodman, ContainerID: idA}},
		// Podman's own monitor is no container.
		{"/machine.slice/libpod-conmon-" + idA + ".scope", Cgroup{}},
		// A container's init may make a sub-cgroup of its own.
		{"/machine.slice/libpod-" + idA + ".scope/container", Cgroup{Runtime: RuntimePodman, ContainerID: idA}},
		{"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod9bb860b4_a6e4_acf9_59da_f85d815086f4.slice/cri-containerd-" + idA + ".scope",
			Cgroup{Runtime: RuntimeContainerd, ContainerID: idA, PodUID: uidA, QoS: QoSBurstable}},
		{"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod9bb860b4_a6e4_acf9_59da_f85d815086f4.slice/crio-" + idA + ".scope",
			Cgroup{Runtime: RuntimeCRIO, ContainerID: idA, PodUID: uidA, QoS: QoSBestEffort}},
		{"/kubepods.slice/kubepods-pod9bb860b4_a6e4_acf9_59da_f85d815086f4.slice/crio-conmon-" + idA + ".scope",
			Cgroup{PodUID: uidA, QoS: QoSGuaranteed}},
		// The pod's slice itself (a pod-level process).
		{"/kubepods.slice/kubepods-pod9bb860b4_a6e4_acf9_59da_f85d815086f4.slice", Cgroup{PodUID: uidA, QoS: QoSGuaranteed}},
		{"/kubepods/besteffort/pod" + uidA + "/" + idA, Cgroup{ContainerID: idA, PodUID: uidA, QoS: QoSBestEffort}},
		{"/kubepods/pod" + uidA + "/" + idA, Cgroup{ContainerID: idA, PodUID: uidA, QoS: QoSGuaranteed}},
		// kind: the node is a Docker container, its pods' containers
		// are below it; the innermost container is the process's.
		{"/system.slice/docker-" + idB + ".scope/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice", Cgroup{Runtime: RuntimeDocker, ContainerID: idB}},
		{"/docker/" + idB + "/kubepods/burstable/pod" + uidA + "/" + idA, Cgroup{ContainerID: idA, PodUID: uidA, QoS: QoSBurstable}},
		// Not IDs: too short, upper case, a pod directory outside kubepods.
		{"/system.slice/docker-abc123.scope", Cgroup{}},
		{"/docker/" + "ABCDEF" + idA[6:], Cgroup{}},
		{"/elsewhere/pod" + uidA + "/" + idA, Cgroup{}},
		{"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podnot_a_uid.slice", Cgroup{}},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			tt.want.Path = tt.path
			if diff := cmp.Diff(tt.want, ParseCgroup(tt.path)); diff != "" {
				t.Errorf("ParseCgroup (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseProcCgroup(t *testing.T) {
	here, err := os.ReadFile("testdata/cgroup-hybrid-here")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		in      string
		want    Cgroup
		wantErr bool
	}{
		// This machine: a hybrid host whose processes sit at the root of
		// the unified hierarchy; the memory hierarchy's path names a
		// sandbox of the host's supervisor, not a container.
		{"hybrid, no container", string(here), Cgroup{Path: "/"}, false},
		{"v2", "0::/system.slice/docker-" + idA + ".scope\n", Cgroup{Path: "/system.slice/docker-" + idA + ".scope", Runtime: RuntimeDocker, ContainerID: idA}, false},
		{"v1 only", "12:pids:/docker/" + idA + "\n11:memory:/docker/" + idA + "\n1:name=systemd:/docker/" + idA + "\n",
			Cgroup{Path: "/docker/" + idA, Runtime: RuntimeDocker, ContainerID: idA}, false},
		{"hybrid, unified unused", "4:memory:/docker/" + idA + "\n0::/\n", Cgroup{Path: "/docker/" + idA, Runtime: RuntimeDocker, ContainerID: idA}, false},
		{"empty", "", Cgroup{}, true},
		{"no path", "0::\n", Cgroup{}, true},
		{"garbage", "hello\n", Cgroup{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseProcCgroup([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("parseProcCgroup (-want +got):\n%s", diff)
			}
		})
	}
}

func FuzzParseCgroup(f *testing.F) {
	f.Add("0::/kubepods/besteffort/pod" + uidA + "/" + idA + "\n")
	f.Add("4:memory:/docker/" + idA + "\n0::/\n")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := parseProcCgroup([]byte(s))
		if err == nil && c.ContainerID != "" && !isContainerID(c.ContainerID) {
			t.Errorf("container ID %q is not one", c.ContainerID)
		}
	})
}
