package localcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// kwokProvisioner is the provisioner name kwok's volume stages write on the
// PersistentVolumes they create.
const kwokProvisioner = "kwok.x-k8s.io/volume"

// storageClassExpr is how kwok's volume stages select claims and volumes.
var storageClassExpr = regexp.MustCompile(`self\.spec\.storageClassName == 'kwok-volume'`)

// writeStages concatenates the Stage documents of <BinDir>/kwok-stages into
// one kwok configuration file. When extra StorageClasses are wanted, the
// volume stages' class selector is widened to them.
func (c *Cluster) writeStages() (string, error) {
	dir := filepath.Join(c.opts.BinDir, "kwok-stages")
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return "", err
	}
	slices.Sort(files)
	classes := append([]string{DefaultStorageClass}, c.opts.StorageClasses...)
	quoted := make([]string, len(classes))
	for i, s := range classes {
		quoted[i] = "'" + s + "'"
	}
	classExpr := "self.spec.storageClassName in [" + strings.Join(quoted, ", ") + "]"

	var out bytes.Buffer
	var names []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		for _, doc := range splitYAML(data) {
			if !regexp.MustCompile(`(?m)^kind:\s*Stage\s*$`).Match(doc) {
				continue
			}
			doc = storageClassExpr.ReplaceAll(doc, []byte(classExpr))
			out.WriteString("---\n")
			out.Write(doc)
			out.WriteString("\n")
			names = append(names, strings.TrimSuffix(filepath.Base(f), ".yaml"))
		}
	}
	if len(names) == 0 {
		return "", fmt.Errorf("localcluster: no kwok Stage documents in %s; rebuild with hack/kube-binaries.sh cluster", dir)
	}
	if !slices.Contains(names, "pvc-provision") {
		c.logf("warning: %s has no volume stages (pvc-provision.yaml): PersistentVolumeClaims will stay Pending; rerun hack/kube-binaries.sh cluster", dir)
	}
	path := filepath.Join(c.dir, "kwok-stages.yaml")
	c.logf("kwok stages: %s", strings.Join(names, ", "))
	return path, os.WriteFile(path, out.Bytes(), 0o644)
}

func splitYAML(data []byte) [][]byte {
	var docs [][]byte
	for _, d := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(data), -1) {
		if strings.TrimSpace(d) != "" {
			docs = append(docs, []byte(strings.TrimSpace(d)))
		}
	}
	return docs
}

// createStorageClasses creates the default StorageClass (kwok-volume, as
// kwok's volume stages expect) and any extra ones, all with Immediate binding
// so that claims are bound before their pods are scheduled.
func (c *Cluster) createStorageClasses(ctx context.Context, cs kubernetes.Interface) error {
	immediate := storagev1.VolumeBindingImmediate
	del := corev1.PersistentVolumeReclaimDelete
	for i, name := range append([]string{DefaultStorageClass}, c.opts.StorageClasses...) {
		sc := &storagev1.StorageClass{
			ObjectMeta:        metav1.ObjectMeta{Name: name},
			Provisioner:       kwokProvisioner,
			ReclaimPolicy:     &del,
			VolumeBindingMode: &immediate,
		}
		if i == 0 {
			sc.Annotations = map[string]string{"storageclass.kubernetes.io/is-default-class": "true"}
		}
		if _, err := cs.StorageV1().StorageClasses().Create(ctx, sc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("localcluster: create StorageClass %s: %w", name, err)
		}
	}
	return nil
}

// createNodes creates the fake nodes kwok manages: no taints, zone and
// hostname labels for topology spread, a pod CIDR each for kwok's pod IPs.
func (c *Cluster) createNodes(ctx context.Context, cs kubernetes.Interface) ([]string, error) {
	res := c.opts.NodeResources
	if len(res) == 0 {
		res = defaultNodeResources()
	}
	var names []string
	for i := range c.opts.Nodes {
		name := fmt.Sprintf("kwok-node-%d", i)
		zone := fmt.Sprintf("zone-%c", 'a'+i)
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{
				Name: name,
				Annotations: map[string]string{
					FakeNodeAnnotation:             "fake",
					"node.alpha.kubernetes.io/ttl": "0",
				},
				Labels: map[string]string{
					"kubernetes.io/hostname":        name,
					"kubernetes.io/os":              "linux",
					"kubernetes.io/arch":            "amd64",
					"topology.kubernetes.io/zone":   zone,
					"topology.kubernetes.io/region": "local",
					"type":                          "kwok",
				},
			},
			Spec: corev1.NodeSpec{
				PodCIDR:  fmt.Sprintf("10.244.%d.0/20", 16*i),
				PodCIDRs: []string{fmt.Sprintf("10.244.%d.0/20", 16*i)},
			},
			// Status may be set on create for Nodes; kwok keeps it.
			Status: corev1.NodeStatus{Capacity: res.DeepCopy(), Allocatable: res.DeepCopy()},
		}
		if _, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("localcluster: create node %s: %w", name, err)
		}
		names = append(names, name)
	}
	return names, nil
}

func (c *Cluster) waitNodesReady(ctx context.Context, cs kubernetes.Interface, kwok *process, names []string) error {
	begin := time.Now()
	var notReady []string
	err := poll(ctx, 60*time.Second, func(ctx context.Context) (bool, error) {
		if done, err := kwok.exited(); done {
			return false, procError(kwok, "exited: %v", err)
		}
		notReady = notReady[:0]
		for _, n := range names {
			node, err := cs.CoreV1().Nodes().Get(ctx, n, metav1.GetOptions{})
			if err != nil || !nodeReady(node) {
				notReady = append(notReady, n)
			}
		}
		return len(notReady) == 0, nil
	})
	var pe *pollError
	if errors.As(err, &pe) {
		return procError(kwok, "nodes %v not Ready within 60s", notReady)
	}
	if err == nil {
		c.logf("nodes Ready after %s", time.Since(begin).Round(10*time.Millisecond))
	}
	return err
}

func nodeReady(n *corev1.Node) bool {
	for _, cond := range n.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			return cond.Status == corev1.ConditionTrue
		}
	}
	return false
}

func (c *Cluster) waitDefaultServiceAccount(ctx context.Context, cs kubernetes.Interface, kcm *process) error {
	err := poll(ctx, 60*time.Second, func(ctx context.Context) (bool, error) {
		if done, err := kcm.exited(); done {
			return false, procError(kcm, "exited: %v", err)
		}
		_, err := cs.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
	var pe *pollError
	if errors.As(err, &pe) {
		return procError(kcm, "ServiceAccount default/default not created within 60s")
	}
	return err
}
