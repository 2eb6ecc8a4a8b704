package diagnose

// Owner names what runs in a diagnosed network namespace: its Kubernetes
// pod, its containers and a few of its processes, so that a finding read
// alone (a log line, an alert, one entry of diagnose --all-netns --json)
// says whose packets were lost. Lists are bounded: a namespace's own label
// plus a few names, never every process.
type Owner struct {
	// Netns is the namespace as people name it: "host", its ip-netns
	// name, or net:[INODE].
	Netns string `json:"netns"`
	// Inode identifies the namespace (lsns, ip netns identify).
	Inode        uint64 `json:"inode,omitempty"`
	PodNamespace string `json:"pod_namespace,omitempty"`
	Pod          string `json:"pod,omitempty"`
	// Containers are container names in the pod where the runtime said,
	// else short IDs; at most a few.
	Containers []string `json:"containers,omitempty"`
	// Processes are the first few processes as COMM[PID];
	// ProcessCount counts them all.
	Processes    []string `json:"processes,omitempty"`
	ProcessCount int      `json:"process_count,omitempty"`
}

// SetOwner labels the report and each of its findings with o.
func (r *Report) SetOwner(o *Owner) {
	r.Owner = o
	for i := range r.Findings {
		r.Findings[i].Owner = o
	}
}
