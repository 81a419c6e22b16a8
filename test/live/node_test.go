package live

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/shopplatform/shop-operator/internal/localcluster"
	"github.com/shopplatform/shop-operator/internal/localstack"
	"github.com/shopplatform/shop-operator/internal/podreason"
)

// TestNodeRunsPodsAndServices checks what the Shop relies on from the node,
// with busybox pods: a restricted pod serves through its Service to the host
// and to other pods by DNS name; logs, exec and port-forward work through the
// kubelet; nothing outside the machine is reachable or resolvable from a
// pod; a NetworkPolicy stops packets; a claim gets a real volume.
func TestNodeRunsPodsAndServices(t *testing.T) {
	t.Parallel() // beside TestShop and TestDemo: its own namespace
	useCluster(t)
	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Minute)
	defer cancel()
	ns := "node-test"
	mustCreate(t, ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	web := map[string]string{"app": "web"}
	mustCreate(t, ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: web},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: web},
				Spec: restrictedPod(corev1.Container{
					Name:    "httpd",
					Image:   localcluster.HelperImage,
					Command: []string{"sh", "-c", "mkdir -p /tmp/www && echo \"hello from $(hostname)\" > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www"},
					Ports:   []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
					ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{
						HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intstr.FromString("http")}}, PeriodSeconds: 1},
				}),
			},
		},
	})
	mustCreate(t, ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec:       corev1.ServiceSpec{Selector: web, Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}}},
	})
	if err := localstack.WaitDeployment(ctx, cs, ns, "web", 3*time.Minute); err != nil {
		t.Fatal(err)
	}
	svc, err := cs.CoreV1().Services(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("the host reaches a Service by its cluster IP", func(t *testing.T) {
		// kube-proxy programs a new endpoint within a second or so.
		body := waitHTTP(t, ctx, "http://"+svc.Spec.ClusterIP+"/")
		if !strings.Contains(body, "hello from web-") {
			t.Fatalf("GET the Service from the host: %q", body)
		}
	})
	t.Run("a pod reaches a Service by its DNS name", func(t *testing.T) {
		out, ok := runPod(t, ctx, ns, "client", nil, "timeout 10 wget -q -O- http://web."+ns+".svc.cluster.local/")
		if !ok || !strings.Contains(out, "hello from web-") {
			t.Fatalf("wget from a pod (ok=%v): %s", ok, out)
		}
	})
	t.Run("nothing outside the machine is reachable or resolvable from a pod", func(t *testing.T) {
		// A SaaS endpoint by name and a public address: both fail at once.
		out, _ := runPod(t, ctx, ns, "outside", nil, `
if nslookup api.datadoghq.com >/dev/null 2>&1; then echo RESOLVED; else echo NO-NAME; fi
if timeout 5 wget -q -O /dev/null http://1.1.1.1/ 2>/dev/null; then echo REACHED; else echo NO-ROUTE; fi
ip route 2>/dev/null || route -n`)
		if !strings.Contains(out, "NO-NAME") || !strings.Contains(out, "NO-ROUTE") || strings.Contains(out, "default") {
			t.Fatalf("a pod reached out of the machine:\n%s", out)
		}
	})
	t.Run("logs, exec and port-forward go through the kubelet", func(t *testing.T) {
		kc := cluster.KubeconfigPath()
		out, err := exec.CommandContext(ctx, "kubectl", "--kubeconfig", kc, "-n", ns, "exec", "deploy/web", "--", "cat", "/tmp/www/index.html").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "hello from web-") {
			t.Fatalf("kubectl exec: %v: %s", err, out)
		}
		pf := exec.CommandContext(ctx, "kubectl", "--kubeconfig", kc, "-n", ns, "port-forward", "svc/web", ":80")
		stdout, _ := pf.StdoutPipe()
		pf.Stderr = os.Stderr
		if err := pf.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = pf.Process.Kill(); _ = pf.Wait() }()
		line, err := bufio.NewReader(stdout).ReadString('\n') // Forwarding from 127.0.0.1:NNNN -> 8080
		if err != nil {
			t.Fatalf("kubectl port-forward: %v", err)
		}
		f := strings.Fields(line)
		if len(f) < 3 || !strings.HasPrefix(f[2], "127.0.0.1:") {
			t.Fatalf("kubectl port-forward said %q", line)
		}
		if body := httpGet(t, ctx, "http://"+f[2]+"/"); !strings.Contains(body, "hello from web-") {
			t.Fatalf("through port-forward: %q", body)
		}
	})
	t.Run("a NetworkPolicy stops packets", func(t *testing.T) {
		mustCreate(t, ctx, &networkingv1.NetworkPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "web-from-allowed", Namespace: ns},
			Spec: networkingv1.NetworkPolicySpec{
				PodSelector: metav1.LabelSelector{MatchLabels: web},
				PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
				Ingress: []networkingv1.NetworkPolicyIngressRule{{
					From: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"access": "allowed"}}}},
				}},
			},
		})
		probe := "if timeout 5 wget -q -O- http://web." + ns + ".svc.cluster.local/; then echo CONNECTED; else echo REFUSED; fi"
		out, _ := runPod(t, ctx, ns, "denied", nil, probe)
		if !strings.Contains(out, "REFUSED") {
			t.Errorf("a pod the policy does not admit connected:\n%s", out)
		}
		out, _ = runPod(t, ctx, ns, "allowed", map[string]string{"access": "allowed"}, probe)
		if !strings.Contains(out, "CONNECTED") {
			t.Errorf("a pod the policy admits could not connect:\n%s", out)
		}
	})
	t.Run("a claim gets a volume on the node", func(t *testing.T) {
		mustCreate(t, ctx, &corev1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{Name: "data", Namespace: ns},
			Spec: corev1.PersistentVolumeClaimSpec{
				AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("64Mi")}},
			},
		})
		out, ok := runPodWith(t, ctx, ns, "writer", nil, "echo kept > /data/proof && cat /data/proof", func(p *corev1.PodSpec) {
			p.Volumes = append(p.Volumes, corev1.Volume{Name: "data", VolumeSource: corev1.VolumeSource{
				PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data"}}})
			p.Containers[0].VolumeMounts = append(p.Containers[0].VolumeMounts, corev1.VolumeMount{Name: "data", MountPath: "/data"})
			p.SecurityContext.FSGroup = ptr.To[int64](65534)
		})
		if !ok || !strings.Contains(out, "kept") {
			t.Fatalf("write to the claim (ok=%v): %s", ok, out)
		}
		pvc, err := cs.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "data", metav1.GetOptions{})
		if err != nil || pvc.Spec.VolumeName == "" {
			t.Fatalf("claim not bound: %v %+v", err, pvc.Status)
		}
		files, _ := filepath.Glob(filepath.Join(cluster.NodeDir(), "volumes", "*", "proof"))
		if len(files) != 1 {
			t.Fatalf("the node's volumes directory holds %v, want one proof file", files)
		}
	})
}

// restrictedPod is a pod spec that passes the restricted Pod Security
// Standard, with a writable /tmp.
func restrictedPod(c corev1.Container) corev1.PodSpec {
	c.SecurityContext = &corev1.SecurityContext{
		AllowPrivilegeEscalation: ptr.To(false),
		ReadOnlyRootFilesystem:   ptr.To(true),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
	}
	c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "tmp", MountPath: "/tmp"})
	c.Resources = corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("16Mi")}}
	return corev1.PodSpec{
		AutomountServiceAccountToken: ptr.To(false),
		SecurityContext: &corev1.PodSecurityContext{
			RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To[int64](65534), RunAsGroup: ptr.To[int64](65534),
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		Containers: []corev1.Container{c},
		Volumes:    []corev1.Volume{{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
	}
}

// runPod runs script in a busybox pod to completion and returns its log and
// whether it succeeded.
func runPod(t *testing.T, ctx context.Context, ns, name string, labels map[string]string, script string) (string, bool) {
	return runPodWith(t, ctx, ns, name, labels, script, nil)
}

func runPodWith(t *testing.T, ctx context.Context, ns, name string, labels map[string]string, script string, edit func(*corev1.PodSpec)) (string, bool) {
	t.Helper()
	spec := restrictedPod(corev1.Container{Name: "run", Image: localcluster.HelperImage, Command: []string{"sh", "-c", script}})
	spec.RestartPolicy = corev1.RestartPolicyNever
	if edit != nil {
		edit(&spec)
	}
	mustCreate(t, ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels}, Spec: spec})
	var pod *corev1.Pod
	err := wait.PollUntilContextTimeout(ctx, time.Second, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		var err error
		pod, err = cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		return err == nil && (pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed), nil
	})
	if err != nil {
		t.Fatalf("pod %s did not finish: %s", name, podreason.Of(pod))
	}
	return podLog(t, ctx, ns, name, ""), pod.Status.Phase == corev1.PodSucceeded
}

// podLog reads a container's log through the API server and the kubelet.
func podLog(t *testing.T, ctx context.Context, ns, pod, container string) string {
	t.Helper()
	rc, err := cs.CoreV1().Pods(ns).GetLogs(pod, &corev1.PodLogOptions{Container: container}).Stream(ctx)
	if err != nil {
		t.Fatalf("logs of %s/%s: %v", ns, pod, err)
	}
	defer rc.Close()
	b, _ := io.ReadAll(io.LimitReader(rc, 16<<20))
	return string(b)
}

func httpGet(t *testing.T, ctx context.Context, url string) string {
	t.Helper()
	body, err := httpBody(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// waitHTTP GETs url until it answers 200 (at most a minute): a Service's
// rules reach the node a moment after its endpoints are ready.
func waitHTTP(t *testing.T, ctx context.Context, url string) string {
	t.Helper()
	var body string
	var last error
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		body, last = httpBody(ctx, url)
		return last == nil, nil
	})
	if err != nil {
		t.Fatalf("%s did not answer within a minute: %v", url, last)
	}
	return body
}

// httpBody GETs url (bounded) and returns the body of a 200 answer.
func httpBody(ctx context.Context, url string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s: %s", url, resp.Status, b)
	}
	return string(b), nil
}

func mustCreate(t *testing.T, ctx context.Context, o client.Object) {
	t.Helper()
	if err := k8s.Create(ctx, o); err != nil {
		t.Fatalf("create %T %s: %v", o, o.GetName(), err)
	}
}
