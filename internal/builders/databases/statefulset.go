package databases

import (
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/render"
	"github.com/shopplatform/shop-operator/internal/secrets"
)

// The postgres:*-alpine image's postgres user and group.
const postgresUID = 70

// ExporterImage is the postgres_exporter sidecar's image.
const ExporterImage = "quay.io/prometheuscommunity/postgres-exporter:v0.17.1"

const (
	metricsPortName = "metrics"
	dataDir         = "/var/lib/postgresql/data"
)

func exporterEnabled(in render.Input) bool {
	return ptr.Deref(in.Spec.Observability.Prometheus.ServiceMonitors, false)
}

// statefulSet runs one Postgres. Its volume outlives the Shop on purpose
// (retention policy Retain): deleting a Shop must never delete its data.
// The API server refuses any change to a claim template, so a grown
// storageSize reaches the volume only by resizing the claim itself.
func statefulSet(in render.Input, svc string, m *shopv1.ManagedDatabase, tls *corev1.Secret) *appsv1.StatefulSet {
	name := in.DatabaseName(svc)
	volumes := []corev1.Volume{
		{Name: "init", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: name + "-init"}, DefaultMode: ptr.To[int32](0o555),
			Items: []corev1.KeyToPath{{Key: initScriptKey, Path: initScriptKey}},
		}}},
		{Name: "hba", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: name + "-init"}, DefaultMode: ptr.To[int32](0o444),
			Items: []corev1.KeyToPath{{Key: hbaKey, Path: hbaKey}},
		}}},
		emptyDir("run", ""),
		emptyDir("tmp", ""),
		// Postgres' dynamic shared memory lives in /dev/shm; the runtime's 64 MiB is too small.
		emptyDir("shm", corev1.StorageMediumMemory),
		tlsVolume(in, svc),
	}
	sts := &appsv1.StatefulSet{
		ObjectMeta: in.ObjectMeta(name, component(svc)),
		Spec: appsv1.StatefulSetSpec{
			Replicas:       ptr.To[int32](1),
			ServiceName:    name,
			UpdateStrategy: appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType},
			Selector:       &metav1.LabelSelector{MatchLabels: in.SelectorLabels(component(svc))},
			PersistentVolumeClaimRetentionPolicy: &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{
				WhenDeleted: appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
				WhenScaled:  appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
			},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{
					Labels:      in.Labels(component(svc)),
					Annotations: map[string]string{configChecksumAnnotation: configChecksum(tls)},
				},
				Spec: corev1.PodSpec{
					AutomountServiceAccountToken: ptr.To(false),
					EnableServiceLinks:           ptr.To(false),
					SecurityContext:              render.PodSecurity(postgresUID),
					Containers:                   containers(in, svc, m),
				},
			},
		},
	}
	if ptr.Deref(m.Ephemeral, false) {
		volumes = append(volumes, emptyDir("data", ""))
	} else {
		sts.Spec.VolumeClaimTemplates = []corev1.PersistentVolumeClaim{dataClaim(in, svc, m)}
	}
	sts.Spec.Template.Spec.Volumes = volumes
	return sts
}

func dataClaim(in render.Input, svc string, m *shopv1.ManagedDatabase) corev1.PersistentVolumeClaim {
	size := resource.MustParse("1Gi")
	if m.StorageSize != nil {
		size = *m.StorageSize
	}
	return corev1.PersistentVolumeClaim{
		// Only the selector labels: a claim template cannot change once created.
		ObjectMeta: metav1.ObjectMeta{Name: "data", Labels: in.SelectorLabels(component(svc))},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName: m.StorageClassName,
			VolumeMode:       ptr.To(corev1.PersistentVolumeFilesystem),
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: size}},
		},
	}
}

func containers(in render.Input, svc string, m *shopv1.ManagedDatabase) []corev1.Container {
	secret := in.DatabaseSecretName(svc)
	image := m.Image
	if image == "" {
		image = "postgres:" + m.Version + "-alpine"
	}
	pgIsReady := &corev1.ProbeHandler{Exec: &corev1.ExecAction{
		Command: []string{"pg_isready", "--host", "127.0.0.1", "--port", strconv.Itoa(render.PostgresPort), "--username", "postgres"},
	}}
	postgres := corev1.Container{
		Name:  "postgres",
		Image: image,
		Args:  args(),
		Ports: []corev1.ContainerPort{{Name: "postgres", ContainerPort: render.PostgresPort, Protocol: corev1.ProtocolTCP}},
		Env: []corev1.EnvVar{
			{Name: "POSTGRES_USER", Value: "postgres"},
			render.SecretEnv("POSTGRES_PASSWORD", secret, secrets.SuperuserPasswordKey),
			// A subdirectory: a fresh volume's root may hold lost+found, which initdb refuses.
			{Name: "PGDATA", Value: dataDir + "/pgdata"},
			{Name: "SERVICE_ROLE", Value: svc},
			{Name: "SERVICE_DATABASE", Value: svc},
			render.SecretEnv("SERVICE_PASSWORD", secret, secrets.PasswordKey),
		},
		// initdb and crash recovery may take minutes: liveness waits for the first success.
		StartupProbe:   &corev1.Probe{ProbeHandler: *pgIsReady, PeriodSeconds: 5, FailureThreshold: 120, TimeoutSeconds: 5, SuccessThreshold: 1},
		ReadinessProbe: &corev1.Probe{ProbeHandler: *pgIsReady, PeriodSeconds: 5, FailureThreshold: 3, TimeoutSeconds: 5, SuccessThreshold: 1},
		LivenessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromString("postgres")}},
			PeriodSeconds: 10, FailureThreshold: 6, TimeoutSeconds: 5, SuccessThreshold: 1},
		VolumeMounts: []corev1.VolumeMount{
			{Name: "data", MountPath: dataDir},
			{Name: "init", MountPath: "/docker-entrypoint-initdb.d", ReadOnly: true},
			{Name: "run", MountPath: "/var/run/postgresql"},
			{Name: "tmp", MountPath: "/tmp"},
			{Name: "shm", MountPath: "/dev/shm"},
			{Name: "tls", MountPath: TLSDir, ReadOnly: true},
			{Name: "hba", MountPath: HBADir, ReadOnly: true},
		},
		SecurityContext:          render.ContainerSecurity(),
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
	}
	if m.Resources != nil {
		postgres.Resources = *m.Resources.DeepCopy()
	}
	// An ephemeral database keeps its data on an emptyDir, which counts
	// against the pod's ephemeral storage.
	var onEmptyDir resource.Quantity
	if ptr.Deref(m.Ephemeral, false) {
		onEmptyDir = resource.MustParse("1Gi")
		if m.StorageSize != nil {
			onEmptyDir = m.StorageSize.DeepCopy()
		}
	}
	postgres.Resources = render.WithEphemeralStorage(postgres.Resources, onEmptyDir)
	out := []corev1.Container{postgres}
	if exporterEnabled(in) {
		out = append(out, exporter(in, secret))
	}
	return out
}

// exporter is the postgres_exporter sidecar; it reaches Postgres over
// localhost, so the database needs no extra network exposure. That traffic
// never leaves the pod's network namespace: TLS would protect nothing, so
// it stays off (sslmode=disable).
func exporter(in render.Input, secret string) corev1.Container {
	return corev1.Container{
		Name:  "exporter",
		Image: ExporterImage,
		Ports: []corev1.ContainerPort{{Name: metricsPortName, ContainerPort: render.PostgresExporterPort, Protocol: corev1.ProtocolTCP}},
		Env: []corev1.EnvVar{
			{Name: "DATA_SOURCE_URI", Value: "127.0.0.1:" + strconv.Itoa(render.PostgresPort) + "/postgres?sslmode=disable"},
			{Name: "DATA_SOURCE_USER", Value: "postgres"},
			render.SecretEnv("DATA_SOURCE_PASS", secret, secrets.SuperuserPasswordKey),
		},
		ReadinessProbe: &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intstr.FromString(metricsPortName), Scheme: corev1.URISchemeHTTP}},
			PeriodSeconds: 10, FailureThreshold: 3, TimeoutSeconds: 5, SuccessThreshold: 1,
		},
		Resources:                render.WithEphemeralStorage(in.Resources("10m", "32Mi", "64Mi"), resource.Quantity{}),
		SecurityContext:          render.ContainerSecurity(),
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
	}
}

func emptyDir(name string, medium corev1.StorageMedium) corev1.Volume {
	return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: medium}}}
}
