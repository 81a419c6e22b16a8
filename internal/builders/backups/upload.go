package backups

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/render"
)

// The keys of the Secret named by backup.s3.secretName.
const (
	S3KeyEndpoint        = "endpoint"        // https://host[:port]
	S3KeyBucket          = "bucket"          //
	S3KeyRegion          = "region"          // optional
	S3KeyAccessKeyID     = "accessKeyID"     //
	S3KeySecretAccessKey = "secretAccessKey" //
)

// S3SecretKeys are the keys the bucket's Secret must hold.
var S3SecretKeys = []string{S3KeyEndpoint, S3KeyBucket, S3KeyAccessKeyID, S3KeySecretAccessKey}

// SecretRefs lists the bucket Secrets of the databases whose backups
// upload. Not blocking: a missing one fails only the upload step (the dump
// still lands on the volume), and ReferencesResolved says what is missing.
func SecretRefs(in render.Input) []render.SecretRef {
	var out []render.SecretRef
	for _, svc := range render.Databases {
		if s3 := uploadTo(in.ManagedDatabase(svc)); s3 != nil {
			out = append(out, render.SecretRef{Name: s3.SecretName, Keys: S3SecretKeys, For: render.BackupUploadOf(svc)})
		}
	}
	return out
}

// uploadTo is the database's bucket, or nil when its backups stay local.
func uploadTo(m *shopv1.ManagedDatabase) *shopv1.BackupS3Spec {
	if m == nil || m.Backup == nil || !ptr.Deref(m.Backup.Enabled, false) {
		return nil
	}
	return m.Backup.S3
}

// UploadContainer is the backup pod's step that copies the dumps to the
// bucket: `shopd backup-upload` in the Shop's own image
// (services/internal/backupupload). It runs after the dump: the dump
// container becomes an init container, so a failed dump uploads nothing and
// a failed upload fails the Job (the next run uploads what is missing).
const UploadContainer = "upload"

// withUpload turns the dump pod into dump-then-upload.
func withUpload(in render.Input, svc string, s3 *shopv1.BackupS3Spec, pod *corev1.PodSpec) {
	dump := pod.Containers[0]
	img := in.Spec.Image
	upload := corev1.Container{
		Name:            UploadContainer,
		Image:           img.Repository + ":" + img.Tag,
		ImagePullPolicy: img.PullPolicy,
		Args:            []string{"backup-upload"},
		Env: []corev1.EnvVar{
			{Name: EnvBackupDir, Value: BackupDir},
			{Name: "PGDATABASE", Value: svc},
			render.SecretEnv("S3_ENDPOINT", s3.SecretName, S3KeyEndpoint),
			render.SecretEnv("S3_BUCKET", s3.SecretName, S3KeyBucket),
			render.OptionalSecretEnv("S3_REGION", s3.SecretName, S3KeyRegion),
			render.SecretEnv("S3_ACCESS_KEY_ID", s3.SecretName, S3KeyAccessKeyID),
			render.SecretEnv("S3_SECRET_ACCESS_KEY", s3.SecretName, S3KeySecretAccessKey),
			// Shops of several namespaces may share a bucket.
			{Name: "S3_PREFIX", Value: in.Shop.Namespace + "/" + in.Shop.Name + "/"},
			{Name: "LOG_LEVEL", Value: "info"},
		},
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("50m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
			// Multipart uploads buffer a few 16 MiB parts at once.
			Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")},
		},
		VolumeMounts: []corev1.VolumeMount{
			{Name: "backups", MountPath: BackupDir, ReadOnly: true},
			{Name: "tmp", MountPath: "/tmp"},
		},
		// The pod's user (postgres, 70) owns the dumps (mode 0600): the
		// upload runs as the same user to read them.
		SecurityContext:          dump.SecurityContext.DeepCopy(),
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
	}
	pod.InitContainers = []corev1.Container{dump}
	pod.Containers = []corev1.Container{upload}
}
