package render

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"

	"github.com/shopplatform/shop-operator/internal/profile"
)

// The ephemeral storage of every container the builders render. The request
// places the pod on a node with that much disk; the limit makes the kubelet
// evict the one pod that fills the node's disk rather than whichever it
// picks. It covers a container's logs (the kubelet keeps up to 5 x 10 MiB),
// its writable layer (the root filesystem is read-only) and the pod's
// disk-backed emptyDirs (/tmp, sockets): WithEphemeralStorage adds what a
// container keeps on an emptyDir on purpose.
var (
	EphemeralStorageRequest = resource.MustParse("64Mi")
	EphemeralStorageLimit   = resource.MustParse("512Mi")
)

// WithEphemeralStorage returns r with an ephemeral-storage request and limit
// where r sets none (a Shop's own resources win): the defaults above, the
// limit raised by onEmptyDir, the data the container keeps on an emptyDir
// (an ephemeral database, Loki's chunks in development).
func WithEphemeralStorage(r corev1.ResourceRequirements, onEmptyDir resource.Quantity) corev1.ResourceRequirements {
	r = *r.DeepCopy()
	if _, ok := r.Requests[corev1.ResourceEphemeralStorage]; !ok {
		if r.Requests == nil {
			r.Requests = corev1.ResourceList{}
		}
		r.Requests[corev1.ResourceEphemeralStorage] = EphemeralStorageRequest
	}
	if _, ok := r.Limits[corev1.ResourceEphemeralStorage]; !ok {
		if r.Limits == nil {
			r.Limits = corev1.ResourceList{}
		}
		limit := EphemeralStorageLimit.DeepCopy()
		limit.Add(onEmptyDir)
		r.Limits[corev1.ResourceEphemeralStorage] = limit
	}
	return r
}

// Resources sizes a container that the builders size themselves (a sidecar,
// a job, a backend; the Shop sizes its services, databases and collector):
// CPU and memory requests, a memory limit unless memoryLimit is empty, and
// the profile's CPU policy (profile.Resolved.CPULimits): a CPU limit of
// profile.CPULimitFactor times the request, or none. Ephemeral storage is
// added by WithEphemeralStorage, as for every container.
func (in Input) Resources(cpu, memory, memoryLimit string) corev1.ResourceRequirements {
	r := corev1.ResourceRequirements{Requests: corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse(cpu),
		corev1.ResourceMemory: resource.MustParse(memory),
	}}
	limits := corev1.ResourceList{}
	if memoryLimit != "" {
		limits[corev1.ResourceMemory] = resource.MustParse(memoryLimit)
	}
	if in.Spec.CPULimits {
		c := r.Requests[corev1.ResourceCPU]
		limits[corev1.ResourceCPU] = *resource.NewMilliQuantity(c.MilliValue()*profile.CPULimitFactor, resource.DecimalSI)
	}
	if len(limits) > 0 {
		r.Limits = limits
	}
	return r
}

// PodSecurity is the pod security context of every pod the builders render
// (the Pod Security Standards' restricted profile): not root, the runtime's
// default seccomp profile. With a uid, the pod runs as that user and group,
// which also owns its volumes (fsGroup); 0 leaves the image's own non-root
// user.
func PodSecurity(uid int64) *corev1.PodSecurityContext {
	sc := &corev1.PodSecurityContext{
		RunAsNonRoot:   ptr.To(true),
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
	if uid != 0 {
		sc.RunAsUser, sc.RunAsGroup, sc.FSGroup = ptr.To(uid), ptr.To(uid), ptr.To(uid)
	}
	return sc
}

// ContainerSecurity is the security context of every container the builders
// render: not root, no privilege escalation, no capabilities, a read-only
// root filesystem (writable volumes are mounted where needed).
func ContainerSecurity() *corev1.SecurityContext {
	return &corev1.SecurityContext{
		RunAsNonRoot:             ptr.To(true),
		ReadOnlyRootFilesystem:   ptr.To(true),
		AllowPrivilegeEscalation: ptr.To(false),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
	}
}

// SecretEnv is an environment variable read from a key of a Secret.
func SecretEnv(name, secret, key string) corev1.EnvVar {
	return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: secret}, Key: key,
	}}}
}

// OptionalSecretEnv is SecretEnv for a key the Secret may lack: the
// variable is then unset.
func OptionalSecretEnv(name, secret, key string) corev1.EnvVar {
	e := SecretEnv(name, secret, key)
	e.ValueFrom.SecretKeyRef.Optional = ptr.To(true)
	return e
}
