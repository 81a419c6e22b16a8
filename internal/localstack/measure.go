package localstack

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/shopplatform/shop-operator/internal/localcluster"
)

// PodMemory is one pod's memory as the node's cgroups account it, next to
// what the pod requests.
type PodMemory struct {
	Pod        string
	WorkingSet int64 // bytes: usage minus inactive file cache, as the kubelet counts it
	Requests   int64 // bytes: the sum of its containers' memory requests
}

// MeasureMemory reads the working set of each pod from the real node's
// memory cgroups (cgroups v1: <root>/kubepods[/<qos>]/pod<uid>).
func MeasureMemory(c *localcluster.Cluster, pods []corev1.Pod) ([]PodMemory, error) {
	root := filepath.Join("/sys/fs/cgroup/memory", "localcluster-"+c.ID(), "kubepods")
	var out []PodMemory
	for _, p := range pods {
		var dir string
		for _, qos := range []string{"", "burstable", "besteffort"} {
			d := filepath.Join(root, qos, "pod"+string(p.UID))
			if _, err := os.Stat(d); err == nil {
				dir = d
				break
			}
		}
		if dir == "" {
			return nil, fmt.Errorf("localstack: no memory cgroup for pod %s (uid %s) under %s", p.Name, p.UID, root)
		}
		ws, err := workingSet(dir)
		if err != nil {
			return nil, err
		}
		var req int64
		for _, ct := range p.Spec.Containers {
			req += ct.Resources.Requests.Memory().Value()
		}
		out = append(out, PodMemory{Pod: p.Name, WorkingSet: ws, Requests: req})
	}
	return out, nil
}

func workingSet(dir string) (int64, error) {
	b, err := os.ReadFile(filepath.Join(dir, "memory.usage_in_bytes"))
	if err != nil {
		return 0, err
	}
	usage, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, err
	}
	f, err := os.Open(filepath.Join(dir, "memory.stat"))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if k, v, ok := strings.Cut(s.Text(), " "); ok && k == "total_inactive_file" {
			inactive, _ := strconv.ParseInt(v, 10, 64)
			if inactive < usage {
				return usage - inactive, nil
			}
			return 0, nil
		}
	}
	return usage, s.Err()
}
