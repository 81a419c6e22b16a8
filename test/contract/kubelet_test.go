package contract

import (
	"crypto/rand"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
)

// This file is the node the test runs the rendered pods on: the part of the
// kubelet that turns a container spec into a process (environment, files,
// command), and a loopback stand-in for cluster DNS and kube-proxy. It
// follows the kubelet wherever the rendered pods depend on it, and refuses
// whatever it does not implement, so that nothing is silently skipped.

// cluster is the rendered objects as the API server would serve them, and
// the pods started from them.
type cluster struct {
	ns         string
	configMaps map[string]*corev1.ConfigMap
	secrets    map[string]*corev1.Secret
	services   map[string]*corev1.Service
	workloads  map[string]*workload // by kind/name
	collectors []string             // OpenTelemetryCollectors: the opentelemetry-operator serves <name>-collector
	pods       []*pod
	procs      []*process // started, for stopAll
	// down is a loopback port nothing listens on: what the collector's
	// Service leads to, as no opentelemetry-operator runs here.
	down int
}

// workload is a Deployment or StatefulSet: what its pods are made of.
type workload struct {
	kind, name string
	template   corev1.PodTemplateSpec
}

// pod is one replica of a workload on this machine: its containers share
// 127.0.0.1, each container port mapped to a free host port.
type pod struct {
	name  string
	w     *workload
	ports map[int32]int // containerPort -> host port
}

func newCluster(t *testing.T, ns string, objs []*unstructured.Unstructured, user ...*corev1.Secret) *cluster {
	t.Helper()
	c := &cluster{ns: ns, configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{},
		services: map[string]*corev1.Service{}, workloads: map[string]*workload{}, down: freePort(t)}
	convert := func(u *unstructured.Unstructured, into any) {
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, into); err != nil {
			t.Fatalf("%s %s: %v", u.GetKind(), u.GetName(), err)
		}
	}
	for _, u := range objs {
		switch u.GetKind() {
		case "ConfigMap":
			cm := &corev1.ConfigMap{}
			convert(u, cm)
			c.configMaps[cm.Name] = cm
		case "Secret":
			s := &corev1.Secret{}
			convert(u, s)
			c.secrets[s.Name] = s
		case "Service":
			s := &corev1.Service{}
			convert(u, s)
			c.services[s.Name] = s
		case "Deployment":
			d := &appsv1.Deployment{}
			convert(u, d)
			c.workloads["Deployment/"+d.Name] = &workload{kind: "Deployment", name: d.Name, template: d.Spec.Template}
		case "StatefulSet":
			s := &appsv1.StatefulSet{}
			convert(u, s)
			c.workloads["StatefulSet/"+s.Name] = &workload{kind: "StatefulSet", name: s.Name, template: s.Spec.Template}
		case "OpenTelemetryCollector":
			c.collectors = append(c.collectors, u.GetName())
		}
	}
	for _, s := range user {
		c.secrets[s.Name] = s
	}
	return c
}

// workload returns the rendered workload, failing the test without it.
func (c *cluster) workload(t *testing.T, kind, name string) *workload {
	t.Helper()
	w, ok := c.workloads[kind+"/"+name]
	if !ok {
		t.Fatalf("no %s %s rendered", kind, name)
	}
	return w
}

// schedule places a pod of w: a plausible name (what metadata.name reads)
// and a host port for every container port, or the given ones.
func (c *cluster) schedule(t *testing.T, w *workload, ports map[int32]int) *pod {
	t.Helper()
	p := &pod{w: w, ports: map[int32]int{}}
	switch w.kind {
	case "StatefulSet":
		p.name = w.name + "-0"
	default:
		p.name = w.name + "-" + randomName(10) + "-" + randomName(5)
	}
	for _, ctr := range w.template.Spec.Containers {
		for _, cp := range ctr.Ports {
			if hp, ok := ports[cp.ContainerPort]; ok {
				p.ports[cp.ContainerPort] = hp
			} else {
				p.ports[cp.ContainerPort] = freePort(t)
			}
		}
	}
	c.pods = append(c.pods, p)
	return p
}

// randomName is like the suffixes Kubernetes gives pods (no vowels, no 0, 1, 3).
func randomName(n int) string {
	const alphabet = "bcdfghjklmnpqrstvwxz2456789"
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// containerPort finds a container's port by name or number.
func containerPort(ctr corev1.Container, port intstr.IntOrString) (int32, error) {
	for _, cp := range ctr.Ports {
		if (port.Type == intstr.String && cp.Name == port.StrVal) || (port.Type == intstr.Int && cp.ContainerPort == port.IntVal) {
			return cp.ContainerPort, nil
		}
	}
	return 0, fmt.Errorf("container %s has no port %s", ctr.Name, port.String())
}

// resolve is cluster DNS and kube-proxy for a client in the Shop's
// namespace: the Service named by host (short or qualified), its port, the
// pod its selector picks and the target port on it, as a loopback address.
func (c *cluster) resolve(host string, port int) (int, error) {
	name := host
	for _, suffix := range []string{"." + c.ns + ".svc.cluster.local", "." + c.ns + ".svc", "." + c.ns} {
		name = strings.TrimSuffix(name, suffix)
	}
	for _, col := range c.collectors {
		if name == col+"-collector" {
			return c.down, nil // the opentelemetry-operator's Service; no collector runs here
		}
	}
	svc, ok := c.services[name]
	if !ok {
		return 0, fmt.Errorf("no Service %s in the Shop's namespace", name)
	}
	var sp *corev1.ServicePort
	for i := range svc.Spec.Ports {
		if int(svc.Spec.Ports[i].Port) == port {
			sp = &svc.Spec.Ports[i]
		}
	}
	if sp == nil {
		return 0, fmt.Errorf("Service %s has no port %d", name, port)
	}
	target := sp.TargetPort
	if target.Type == intstr.Int && target.IntVal == 0 {
		target = intstr.FromInt32(sp.Port)
	}
	selector := labels.SelectorFromSet(svc.Spec.Selector)
	var picked []*pod
	for _, p := range c.pods {
		if selector.Matches(labels.Set(p.w.template.Labels)) {
			picked = append(picked, p)
		}
	}
	if len(picked) == 0 {
		return 0, fmt.Errorf("Service %s selects no running pod", name)
	}
	for _, ctr := range picked[0].w.template.Spec.Containers {
		if cp, err := containerPort(ctr, target); err == nil {
			return picked[0].ports[cp], nil
		}
	}
	return 0, fmt.Errorf("Service %s targets port %s, which pod %s does not have", name, target.String(), picked[0].name)
}

// env is the container's environment as the kubelet makes it: envFrom
// first, then env (which wins), $(VAR) expanded; references resolved from
// the ConfigMaps and Secrets (an optional one that is missing leaves the
// variable out, a required one keeps the container from starting: an
// error); the Downward API with this pod's values.
func (c *cluster) env(p *pod, ctr corev1.Container) ([]envVar, error) {
	var vars []envVar
	set := func(name, value string) {
		for i := range vars {
			if vars[i].name == name {
				vars[i].value = value
				return
			}
		}
		vars = append(vars, envVar{name, value})
	}
	for _, from := range ctr.EnvFrom {
		var data map[string]string
		switch {
		case from.ConfigMapRef != nil:
			cm, ok := c.configMaps[from.ConfigMapRef.Name]
			if !ok {
				if optional(from.ConfigMapRef.Optional) {
					continue
				}
				return nil, fmt.Errorf("envFrom: ConfigMap %s not found", from.ConfigMapRef.Name)
			}
			data = cm.Data
		case from.SecretRef != nil:
			s, ok := c.secrets[from.SecretRef.Name]
			if !ok {
				if optional(from.SecretRef.Optional) {
					continue
				}
				return nil, fmt.Errorf("envFrom: Secret %s not found", from.SecretRef.Name)
			}
			data = map[string]string{}
			for k, v := range s.Data {
				data[k] = string(v)
			}
		default:
			return nil, fmt.Errorf("envFrom %v: not implemented here", from)
		}
		// The kubelet skips keys that are not valid names (and records an event).
		for _, k := range slices.Sorted(maps.Keys(data)) {
			if len(validation.IsEnvVarName(from.Prefix+k)) == 0 {
				set(from.Prefix+k, data[k])
			}
		}
	}
	for _, e := range ctr.Env {
		if e.ValueFrom == nil {
			set(e.Name, expand(e.Value, vars))
			continue
		}
		v, ok, err := c.valueFrom(p, e.ValueFrom)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", e.Name, err)
		}
		if ok {
			set(e.Name, v)
		}
	}
	return vars, nil
}

type envVar struct{ name, value string }

func (c *cluster) valueFrom(p *pod, from *corev1.EnvVarSource) (string, bool, error) {
	switch {
	case from.ConfigMapKeyRef != nil:
		r := from.ConfigMapKeyRef
		cm, ok := c.configMaps[r.Name]
		v, has := "", false
		if ok {
			v, has = cm.Data[r.Key]
		}
		if !has {
			if optional(r.Optional) {
				return "", false, nil
			}
			return "", false, fmt.Errorf("key %s of ConfigMap %s not found: the container would not start", r.Key, r.Name)
		}
		return v, true, nil
	case from.SecretKeyRef != nil:
		r := from.SecretKeyRef
		s, ok := c.secrets[r.Name]
		var v []byte
		has := false
		if ok {
			v, has = s.Data[r.Key]
		}
		if !has {
			if optional(r.Optional) {
				return "", false, nil
			}
			return "", false, fmt.Errorf("key %s of Secret %s not found: the container would not start", r.Key, r.Name)
		}
		return string(v), true, nil
	case from.FieldRef != nil:
		// Plausible values: what the API server would have filled in.
		switch path := from.FieldRef.FieldPath; path {
		case "metadata.name":
			return p.name, true, nil
		case "metadata.namespace":
			return c.ns, true, nil
		case "spec.nodeName":
			return "node-1", true, nil
		case "spec.serviceAccountName":
			return p.w.template.Spec.ServiceAccountName, true, nil
		case "status.podIP", "status.hostIP":
			return "127.0.0.1", true, nil
		default:
			return "", false, fmt.Errorf("fieldRef %s: not implemented here", path)
		}
	default:
		return "", false, fmt.Errorf("valueFrom %v: not implemented here", from)
	}
}

func optional(b *bool) bool { return b != nil && *b }

// expand replaces $(NAME) by an earlier variable's value, as the kubelet
// does in env values, command and args; $$ is a literal $, and a reference
// to an unknown name stays as it is.
func expand(s string, vars []envVar) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
			continue
		case '(':
			if end := strings.IndexByte(s[i:], ')'); end > 0 {
				name := s[i+2 : i+end]
				if j := slices.IndexFunc(vars, func(v envVar) bool { return v.name == name }); j >= 0 {
					b.WriteString(vars[j].value)
					i += end
					continue
				}
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// owner is who the kubelet makes a volume's files belong to on this
// machine, and how their modes are changed (identity: as rendered).
type owner struct {
	uid, gid int // -1: leave as created (not root)
	mode     func(os.FileMode) os.FileMode
}

// mount lays out the container's volumes under root the way the kubelet
// projects them: each Secret or ConfigMap item as a file under its
// mountPath (an optional source or key that is missing is skipped, a
// required one keeps the pod from starting), emptyDirs as empty
// directories. Other volume kinds and subPath are refused.
func (c *cluster) mount(root string, spec corev1.PodSpec, ctr corev1.Container, own owner) error {
	for _, m := range ctr.VolumeMounts {
		i := slices.IndexFunc(spec.Volumes, func(v corev1.Volume) bool { return v.Name == m.Name })
		if i < 0 {
			return fmt.Errorf("volumeMount %s: no such volume", m.Name)
		}
		if m.SubPath != "" || m.SubPathExpr != "" {
			return fmt.Errorf("volumeMount %s: subPath is not implemented here", m.Name)
		}
		v := spec.Volumes[i]
		dir := filepath.Join(root, m.MountPath)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		var (
			data        map[string][]byte
			items       []corev1.KeyToPath
			defaultMode *int32
			opt         bool
			found       bool
		)
		switch {
		case v.EmptyDir != nil:
			continue
		case v.Secret != nil:
			var s *corev1.Secret
			s, found = c.secrets[v.Secret.SecretName]
			if found {
				data = s.Data
			}
			items, defaultMode, opt = v.Secret.Items, v.Secret.DefaultMode, optional(v.Secret.Optional)
		case v.ConfigMap != nil:
			var cm *corev1.ConfigMap
			cm, found = c.configMaps[v.ConfigMap.Name]
			if found {
				data = map[string][]byte{}
				for k, s := range cm.Data {
					data[k] = []byte(s)
				}
			}
			items, defaultMode, opt = v.ConfigMap.Items, v.ConfigMap.DefaultMode, optional(v.ConfigMap.Optional)
		default:
			return fmt.Errorf("volume %s: only secret, configMap and emptyDir are implemented here", v.Name)
		}
		if !found {
			if opt {
				continue
			}
			return fmt.Errorf("volume %s: its source does not exist: the pod would not start", v.Name)
		}
		if len(items) == 0 {
			for _, k := range slices.Sorted(maps.Keys(data)) {
				items = append(items, corev1.KeyToPath{Key: k, Path: k})
			}
		}
		mode := int32(0o644) // the API server's default
		if defaultMode != nil {
			mode = *defaultMode
		}
		for _, it := range items {
			b, ok := data[it.Key]
			if !ok {
				if opt {
					continue
				}
				return fmt.Errorf("volume %s: key %s not found: the pod would not start", v.Name, it.Key)
			}
			m := mode
			if it.Mode != nil {
				m = *it.Mode
			}
			path := filepath.Join(dir, it.Path)
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				return err
			}
			fm := os.FileMode(m)
			if own.mode != nil {
				fm = own.mode(fm)
			}
			if err := os.WriteFile(path, b, 0o600); err != nil {
				return err
			}
			if own.uid >= 0 {
				if err := os.Chown(path, own.uid, own.gid); err != nil {
					return err
				}
			}
			if err := os.Chmod(path, fm); err != nil {
				return err
			}
		}
	}
	return nil
}

// urlPattern finds scheme://[user@]host:port in a value.
var urlPattern = regexp.MustCompile(`([a-z][a-z0-9+.-]*)://([^/@\s]*@)?([a-z0-9.-]+):([0-9]+)`)

// listenPattern is a listen address on every interface.
var listenPattern = regexp.MustCompile(`^(0\.0\.0\.0)?:([0-9]+)$`)

// place moves the environment from the cluster onto this machine, and only
// where the two differ:
//   - a listen address on every interface (":8080") is the pod's own: it
//     becomes 127.0.0.1 and the host port of that container port (one that
//     the container does not declare is an error: no probe or Service could
//     reach it);
//   - a URL's host:port names a Service: it becomes the loopback address
//     kube-proxy would lead to (a name no Service has is an error: shopd
//     would ask DNS off this machine);
//   - PGHOST names a database Service and PGPORT its port (libpq's pair):
//     they become localhost (which the database's certificate also names,
//     see startDatabase) and the pod's host port;
//   - an absolute path is in the container's filesystem: it moves under root,
//     where only the mounted volumes exist.
func (c *cluster) place(p *pod, vars []envVar, root string) ([]string, error) {
	var pgHost string
	for _, v := range vars {
		if v.name == "PGHOST" {
			pgHost = v.value
		}
	}
	var out []string
	for _, v := range vars {
		value := v.value
		switch {
		case v.name == "PGHOST":
			value = "localhost"
		case v.name == "PGPORT":
			port, err := strconv.Atoi(value)
			if err != nil {
				return nil, fmt.Errorf("PGPORT=%q", value)
			}
			hp, err := c.resolve(pgHost, port)
			if err != nil {
				return nil, fmt.Errorf("PGHOST=%s PGPORT=%s: %w", pgHost, value, err)
			}
			value = strconv.Itoa(hp)
		case listenPattern.MatchString(value):
			port, _ := strconv.Atoi(listenPattern.FindStringSubmatch(value)[2])
			hp, ok := p.ports[int32(port)]
			if !ok {
				return nil, fmt.Errorf("%s=%s listens on a port the container does not declare", v.name, value)
			}
			value = "127.0.0.1:" + strconv.Itoa(hp)
		case strings.HasPrefix(value, "/"):
			value = filepath.Join(root, value)
		default:
			var err error
			value = urlPattern.ReplaceAllStringFunc(value, func(u string) string {
				m := urlPattern.FindStringSubmatch(u)
				port, _ := strconv.Atoi(m[4])
				hp, rerr := c.resolve(m[3], port)
				if rerr != nil {
					err = fmt.Errorf("%s=%s: %w", v.name, v.value, rerr)
					return u
				}
				host := "127.0.0.1"
				if strings.HasPrefix(m[1], "postgres") {
					host = "localhost"
				}
				return m[1] + "://" + m[2] + host + ":" + strconv.Itoa(hp)
			})
			if err != nil {
				return nil, err
			}
		}
		out = append(out, v.name+"="+value)
	}
	return out, nil
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
