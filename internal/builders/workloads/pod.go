package workloads

import (
	"slices"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/render"
	"github.com/shopplatform/shop-operator/internal/secrets"
)

// Container port names (the Service and the probes refer to them).
const (
	portHTTP  = render.HTTPPortName
	portAdmin = render.AdminPortName
)

// The UID and GID of the shopd image's non-root user.
const shopdUID = 65532

// IstioInjectLabel asks Istio to inject its sidecar into a pod.
const IstioInjectLabel = "sidecar.istio.io/inject"

const istioProxyConfigAnnotation = "proxy.istio.io/config"

const signingKeyDir = "/var/run/secrets/shop/auth"

// databaseCADir holds the CA certificate of a managed database's TLS Secret.
const databaseCADir = "/var/run/secrets/shop/db-tls"

// externalDatabaseHome is HOME for a service with an external database: its
// .postgresql/root.crt is the CA from the user's Secret, when it has one.
// libpq and pgx both read that default root certificate only if the file
// exists, which is what an optional key needs. PGSSLROOTCERT would not do:
// pgx fails on a missing file in every sslmode, and the operator cannot see
// whether the user's Secret holds the key.
const externalDatabaseHome = "/var/run/secrets/shop/db-client"

func deployment(in render.Input, svc string, w shopv1.WorkloadSpec) *appsv1.Deployment {
	podLabels, podAnnotations := in.Labels(svc), map[string]string{}
	if in.APIs.Istio && ptr.Deref(in.Spec.Gateway.Istio.Enabled, false) {
		podLabels[IstioInjectLabel] = "true"
		// The services reach their database and peers at start (migrations,
		// JWKS): hold them until the sidecar can carry that traffic.
		podAnnotations[istioProxyConfigAnnotation] = `{"holdApplicationUntilProxyStarts":true}`
	}
	d := &appsv1.Deployment{
		ObjectMeta: in.ObjectMeta(in.Name(svc), svc),
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: in.SelectorLabels(svc)},
			// Roll without ever dropping below the wanted capacity.
			Strategy: appsv1.DeploymentStrategy{
				Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{
					MaxUnavailable: ptr.To(intstr.FromInt32(0)),
					MaxSurge:       ptr.To(intstr.FromString("25%")),
				},
			},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels, Annotations: podAnnotations},
				Spec:       podSpec(in, svc, w),
			},
		},
	}
	// With autoscaling the HPA owns the replica count: leaving it unset keeps
	// server-side apply from resetting what the HPA chose.
	if !autoscaled(w) {
		d.Spec.Replicas = ptr.To(ptr.Deref(w.Replicas, 1))
	}
	return d
}

func podSpec(in render.Input, svc string, w shopv1.WorkloadSpec) corev1.PodSpec {
	volumes := []corev1.Volume{{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	mounts := []corev1.VolumeMount{{Name: "tmp", MountPath: "/tmp"}}
	if svc == render.Auth {
		volumes = append(volumes, corev1.Volume{Name: "signing-key", VolumeSource: corev1.VolumeSource{
			Secret: &corev1.SecretVolumeSource{SecretName: in.SigningKeySecretName(), DefaultMode: ptr.To[int32](0o440)},
		}})
		mounts = append(mounts, corev1.VolumeMount{Name: "signing-key", MountPath: signingKeyDir, ReadOnly: true})
	}
	if in.ManagedDatabase(svc) != nil {
		// Only the CA: the server's key stays in the database's pod.
		volumes = append(volumes, corev1.Volume{Name: "db-tls", VolumeSource: corev1.VolumeSource{
			Secret: &corev1.SecretVolumeSource{
				SecretName:  secrets.DatabaseTLSSecretName(in, svc),
				Items:       []corev1.KeyToPath{{Key: secrets.CACertKey, Path: secrets.CACertKey}},
				DefaultMode: ptr.To[int32](0o444),
			},
		}})
		mounts = append(mounts, corev1.VolumeMount{Name: "db-tls", MountPath: databaseCADir, ReadOnly: true})
	}
	if ext := in.ExternalDatabase(svc); ext != nil {
		// Optional: without the key the kubelet skips the item and the
		// directory stays empty.
		volumes = append(volumes, corev1.Volume{Name: "db-ca", VolumeSource: corev1.VolumeSource{
			Secret: &corev1.SecretVolumeSource{
				SecretName:  ext.SecretName,
				Items:       []corev1.KeyToPath{{Key: secrets.CACertKey, Path: "root.crt"}},
				DefaultMode: ptr.To[int32](0o444),
				Optional:    ptr.To(true),
			},
		}})
		mounts = append(mounts, corev1.VolumeMount{Name: "db-ca", MountPath: externalDatabaseHome + "/.postgresql", ReadOnly: true})
	}
	spec := corev1.PodSpec{
		ServiceAccountName:           in.Name(svc),
		AutomountServiceAccountToken: ptr.To(false),
		// Peers are found through the ConfigMap, not Docker-link variables.
		EnableServiceLinks: ptr.To(false),
		SecurityContext:    render.PodSecurity(shopdUID),
		Containers:         []corev1.Container{container(in, svc, w, mounts)},
		Volumes:            volumes,
	}
	if in.Spec.TopologySpread {
		spec.TopologySpreadConstraints = topologySpread(in, svc)
	}
	return spec
}

func container(in render.Input, svc string, w shopv1.WorkloadSpec, mounts []corev1.VolumeMount) corev1.Container {
	img := image(in.Spec.Image, w.Image)
	c := corev1.Container{
		Name:            svc,
		Image:           img.Repository + ":" + img.Tag,
		ImagePullPolicy: img.PullPolicy,
		Args:            []string{svc},
		Ports: []corev1.ContainerPort{
			{Name: portHTTP, ContainerPort: render.HTTPPort, Protocol: corev1.ProtocolTCP},
			{Name: portAdmin, ContainerPort: render.AdminPort, Protocol: corev1.ProtocolTCP},
		},
		EnvFrom: []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: in.Name("config")},
		}}},
		Env: env(in, svc, w),
		// Migrations run at start: give them up to two minutes before liveness counts.
		StartupProbe:             probe("/healthz", 2, 60),
		LivenessProbe:            probe("/healthz", 10, 3),
		ReadinessProbe:           probe("/readyz", 5, 3),
		VolumeMounts:             mounts,
		SecurityContext:          render.ContainerSecurity(),
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
	}
	if w.Resources != nil {
		c.Resources = *w.Resources.DeepCopy()
	}
	return c
}

// image lays a workload's image over the Shop's, field by field.
func image(shop shopv1.ImageSpec, override *shopv1.ImageSpec) shopv1.ImageSpec {
	if override == nil {
		return shop
	}
	out := shop
	if override.Repository != "" {
		out.Repository = override.Repository
	}
	if override.Tag != "" {
		out.Tag = override.Tag
	}
	if override.PullPolicy != "" {
		out.PullPolicy = override.PullPolicy
	}
	return out
}

func probe(path string, period, failures int32) *corev1.Probe {
	return &corev1.Probe{
		ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
			Path: path, Port: intstr.FromString(portAdmin), Scheme: corev1.URISchemeHTTP,
		}},
		PeriodSeconds: period, FailureThreshold: failures, TimeoutSeconds: 2, SuccessThreshold: 1,
	}
}

// env is the container's own environment; the shared settings come from the
// ConfigMap. The user's env comes last and replaces any variable of the same
// name, so the user always wins.
func env(in render.Input, svc string, w shopv1.WorkloadSpec) []corev1.EnvVar {
	logLevel := w.LogLevel
	if logLevel == "" {
		logLevel = "info"
	}
	vars := []corev1.EnvVar{
		{Name: "LOG_LEVEL", Value: string(logLevel)},
		fieldRef("K8S_POD_NAME", "metadata.name"),
		fieldRef("K8S_NAMESPACE_NAME", "metadata.namespace"),
		fieldRef("K8S_NODE_NAME", "spec.nodeName"),
	}
	vars = append(vars, databaseEnv(in, svc)...)
	switch svc {
	case render.Auth:
		vars = append(vars, corev1.EnvVar{Name: "AUTH_SIGNING_KEY_FILE", Value: signingKeyDir + "/" + secrets.SigningKeyKey})
		if a := in.Spec.Admin; a != nil {
			// Straight from the user's Secret: the password is never copied.
			vars = append(vars,
				render.SecretEnv("AUTH_ADMIN_EMAIL", a.SecretName, secrets.AdminEmailKey),
				render.SecretEnv("AUTH_ADMIN_PASSWORD", a.SecretName, secrets.PasswordKey))
		}
	case render.Frontend:
		vars = append(vars,
			render.SecretEnv("FRONTEND_COOKIE_SECRET", secrets.CookieSecretName(in), secrets.CookieSecretKey),
			// Behind TLS the session and cart cookies must never travel over
			// plain HTTP; on http a browser would drop Secure cookies.
			corev1.EnvVar{Name: "FRONTEND_SECURE_COOKIES", Value: strconv.FormatBool(in.GatewayTLS())})
	}
	vars = append(vars, faultEnv(in, svc)...)
	vars = slices.DeleteFunc(vars, func(v corev1.EnvVar) bool {
		return slices.ContainsFunc(w.Env, func(u corev1.EnvVar) bool { return u.Name == v.Name })
	})
	for _, u := range w.Env {
		vars = append(vars, *u.DeepCopy())
	}
	return vars
}

// databaseEnv connects a service to its database with the standard PG*
// variables: a managed database through its generated credentials (the
// service's own role, never the superuser) over TLS verified against the
// database's own CA, an external one entirely from the user's Secret
// (sslmode included: only the user knows what their database offers; its
// optional ca.crt becomes the default root certificate, see
// externalDatabaseHome).
func databaseEnv(in render.Input, svc string) []corev1.EnvVar {
	if ext := in.ExternalDatabase(svc); ext != nil {
		s := ext.SecretName
		return []corev1.EnvVar{
			render.SecretEnv("PGHOST", s, secrets.HostKey),
			render.SecretEnv("PGPORT", s, secrets.PortKey),
			render.SecretEnv("PGDATABASE", s, secrets.DBNameKey),
			render.SecretEnv("PGUSER", s, secrets.UserKey),
			render.SecretEnv("PGPASSWORD", s, secrets.PasswordKey),
			render.OptionalSecretEnv("PGSSLMODE", s, secrets.SSLModeKey),
			{Name: "HOME", Value: externalDatabaseHome},
		}
	}
	if in.ManagedDatabase(svc) == nil {
		return nil // no database
	}
	return []corev1.EnvVar{
		{Name: "PGHOST", Value: in.DatabaseName(svc)},
		{Name: "PGPORT", Value: strconv.Itoa(render.PostgresPort)},
		{Name: "PGDATABASE", Value: svc},
		{Name: "PGUSER", Value: svc},
		render.SecretEnv("PGPASSWORD", in.DatabaseSecretName(svc), secrets.PasswordKey),
		{Name: "PGSSLMODE", Value: "verify-full"},
		{Name: "PGSSLROOTCERT", Value: databaseCADir + "/" + secrets.CACertKey},
	}
}

func fieldRef(name, path string) corev1.EnvVar {
	return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{
		FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: path},
	}}
}
