// Package backups renders scheduled pg_dump backups of every managed
// database that wants them: a retained PersistentVolumeClaim for the dumps, a
// CronJob that writes and prunes them, and (with Prometheus rules) the alert
// ShopBackupMissing. It also renders the Job that restores a dump
// (shopctl db restore). Build is pure: it reads only its input.
package backups

import (
	"fmt"
	"strconv"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/render"
	"github.com/shopplatform/shop-operator/internal/secrets"
)

// postgresUID is the postgres user of the postgres:*-alpine image.
const postgresUID = 70

// OTLPHTTPPort is the collector's OTLP/HTTP receiver.
const OTLPHTTPPort = 4318

// Build returns the backup objects of every managed database with backups on.
func Build(in render.Input) ([]client.Object, error) {
	var out []client.Object
	var scheduled []scheduledDB
	for _, svc := range render.Databases {
		m := in.ManagedDatabase(svc)
		if m == nil || m.Backup == nil || !ptr.Deref(m.Backup.Enabled, false) {
			continue
		}
		if m.Backup.Schedule == "" {
			return nil, fmt.Errorf("databases.%s.managed.backup: enabled without a schedule", svc)
		}
		period, err := Period(m.Backup.Schedule)
		if err != nil {
			return nil, fmt.Errorf("databases.%s.managed.backup.schedule: %w", svc, err)
		}
		out = append(out, claim(in, svc, m), cronJob(in, svc, m))
		scheduled = append(scheduled, scheduledDB{svc: svc, period: period, upload: uploadTo(m) != nil})
	}
	if rule := prometheusRule(in, scheduled); rule != nil {
		out = append(out, rule)
	}
	return out, nil
}

// Component is the label value of a database's backup objects; the
// database's NetworkPolicy admits pods with it (mesh.DatabaseClientComponents).
func Component(svc string) string { return svc + "-db-backup" }

// CronJobName is <shop>-<svc>-db-backup.
func CronJobName(in render.Input, svc string) string { return in.DatabaseName(svc) + "-backup" }

// ClaimName is the backups volume <shop>-<svc>-db-backups.
func ClaimName(in render.Input, svc string) string { return in.DatabaseName(svc) + "-backups" }

// image is the database's own Postgres image (as the databases builder
// chooses it), so pg_dump and pg_restore match the server.
func image(m *shopv1.ManagedDatabase) string {
	if m.Image != "" {
		return m.Image
	}
	return "postgres:" + m.Version + "-alpine"
}

// MetricsURL is the collector's OTLP/HTTP metrics endpoint, or empty when no
// collector runs.
func MetricsURL(in render.Input) string {
	if in.OTLPEndpoint() == "" {
		return ""
	}
	return fmt.Sprintf("http://%s:%d/v1/metrics", in.Name("collector"), OTLPHTTPPort)
}

// claim holds the dumps. It is retained: deleting the Shop must not delete
// its backups (the engine gives it no owner reference).
func claim(in render.Input, svc string, m *shopv1.ManagedDatabase) *corev1.PersistentVolumeClaim {
	size := resource.MustParse("1Gi")
	if m.Backup.StorageSize != nil {
		size = *m.Backup.StorageSize
	}
	meta := in.ObjectMeta(ClaimName(in, svc), Component(svc))
	meta.Annotations = map[string]string{render.AnnotationRetain: "true"}
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: meta,
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName: m.StorageClassName,
			VolumeMode:       ptr.To(corev1.PersistentVolumeFilesystem),
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: size}},
		},
	}
}

func cronJob(in render.Input, svc string, m *shopv1.ManagedDatabase) *batchv1.CronJob {
	env := append(connectionEnv(in, svc),
		corev1.EnvVar{Name: EnvBackupDir, Value: BackupDir},
		corev1.EnvVar{Name: EnvRetain, Value: strconv.Itoa(int(ptr.Deref(m.Backup.Retain, 7)))},
		corev1.EnvVar{Name: EnvMetricsURL, Value: MetricsURL(in)},
		corev1.EnvVar{Name: EnvShop, Value: in.Shop.Name},
		corev1.EnvVar{Name: EnvNamespace, Value: in.Shop.Namespace},
	)
	pod := podTemplate(in, svc, m, "pg-dump", Command(), env, false)
	if s3 := uploadTo(m); s3 != nil {
		withUpload(in, svc, s3, &pod.Spec)
	}
	return &batchv1.CronJob{
		ObjectMeta: in.ObjectMeta(CronJobName(in, svc), Component(svc)),
		Spec: batchv1.CronJobSpec{
			Schedule: m.Backup.Schedule,
			// One dump at a time; a run missed by more than this is skipped
			// rather than piled up after an outage.
			ConcurrencyPolicy:          batchv1.ForbidConcurrent,
			StartingDeadlineSeconds:    ptr.To[int64](600),
			SuccessfulJobsHistoryLimit: ptr.To[int32](3),
			FailedJobsHistoryLimit:     ptr.To[int32](3),
			JobTemplate: batchv1.JobTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: in.Labels(Component(svc))},
				Spec: batchv1.JobSpec{
					BackoffLimit: ptr.To[int32](2),
					Template:     pod,
				},
			},
		},
	}
}

// connectionEnv connects as the database superuser (the service's role may
// not read everything a restore must recreate) from the credentials Secret.
func connectionEnv(in render.Input, svc string) []corev1.EnvVar {
	secret := in.DatabaseSecretName(svc)
	return []corev1.EnvVar{
		{Name: "PGHOST", Value: in.DatabaseName(svc)},
		{Name: "PGPORT", Value: strconv.Itoa(render.PostgresPort)},
		{Name: "PGDATABASE", Value: svc},
		{Name: "PGUSER", Value: "postgres"},
		render.SecretEnv("PGPASSWORD", secret, secrets.SuperuserPasswordKey),
		{Name: "PGCONNECT_TIMEOUT", Value: "10"},
		// Over the network, so over TLS, verified against the database's own CA.
		{Name: "PGSSLMODE", Value: "verify-full"},
		{Name: "PGSSLROOTCERT", Value: databaseCADir + "/" + secrets.CACertKey},
	}
}

// databaseCADir holds the database's CA certificate (the ca.crt of its TLS Secret).
const databaseCADir = "/var/run/secrets/shop/db-tls"

// podTemplate runs one Postgres-image container with the backups volume.
// Pods carry the backup component (admitted by the database's
// NetworkPolicy) and no Istio sidecar, which would keep a Job's pod running
// after its work is done.
func podTemplate(in render.Input, svc string, m *shopv1.ManagedDatabase, name string, command []string, env []corev1.EnvVar, readOnly bool) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{
			Labels:      in.Labels(Component(svc)),
			Annotations: map[string]string{"sidecar.istio.io/inject": "false"},
		},
		Spec: corev1.PodSpec{
			RestartPolicy:                corev1.RestartPolicyNever,
			AutomountServiceAccountToken: ptr.To(false),
			EnableServiceLinks:           ptr.To(false),
			SecurityContext:              render.PodSecurity(postgresUID),
			Containers: []corev1.Container{{
				Name:      name,
				Image:     image(m),
				Command:   command,
				Env:       env,
				Resources: render.WithEphemeralStorage(in.Resources("50m", "64Mi", "512Mi"), resource.Quantity{}),
				VolumeMounts: []corev1.VolumeMount{
					{Name: "backups", MountPath: BackupDir, ReadOnly: readOnly},
					{Name: "tmp", MountPath: "/tmp"},
					{Name: "db-tls", MountPath: databaseCADir, ReadOnly: true},
				},
				SecurityContext:          render.ContainerSecurity(),
				TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
			}},
			Volumes: []corev1.Volume{
				{Name: "backups", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{
					ClaimName: ClaimName(in, svc), ReadOnly: readOnly,
				}}},
				{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
				{Name: "db-tls", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
					SecretName: secrets.DatabaseTLSSecretName(in, svc),
					Items:      []corev1.KeyToPath{{Key: secrets.CACertKey, Path: secrets.CACertKey}},
				}}},
			},
		},
	}
}

// RestoreJob restores the dump file (a name in the backups volume) into the
// service's database. It is not part of the Shop's desired state: shopctl db
// restore creates it while the Shop is paused.
func RestoreJob(in render.Input, svc, file string) (*batchv1.Job, error) {
	m := in.ManagedDatabase(svc)
	if m == nil {
		return nil, fmt.Errorf("the %s database is not managed by the operator: restore it with your database's own tools", svc)
	}
	return &batchv1.Job{
		ObjectMeta: in.ObjectMeta(in.DatabaseName(svc)+"-restore", Component(svc)),
		Spec: batchv1.JobSpec{
			BackoffLimit:            ptr.To[int32](0), // a failed restore needs a human, not a retry
			TTLSecondsAfterFinished: ptr.To[int32](86400),
			Template: podTemplate(in, svc, m, "pg-restore",
				RestoreArgs(svc, BackupDir+"/"+file), connectionEnv(in, svc), true),
		},
	}, nil
}
