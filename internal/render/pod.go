package render

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
)

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
