// Package operations renders the testing profile's extras: the load
// generator (Deployment <shop>-loadgen, `shopd loadgen`) and the synthetic
// checkout (CronJob <shop>-synthetic, `shopd synthetic`), from
// spec.operations. Both send their metrics over OTLP to the Shop's collector
// (the load generator also serves /metrics on its admin port, unscraped, so
// Prometheus never sees the same series twice). The profiles turn both on in testing only; a Shop turns
// them on anywhere. Build is pure: it reads only its input.
package operations

import (
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/shopplatform/shop-operator/internal/builders/backups"
	"github.com/shopplatform/shop-operator/internal/render"
)

// Components (app.kubernetes.io/component, and the children's name suffix).
const (
	LoadGenerator  = "loadgen"
	SyntheticCheck = "synthetic"
)

// DefaultSchedule runs the synthetic checkout every five minutes.
const DefaultSchedule = "*/5 * * * *"

// loadSamplingRatio head-samples the load's traces: the load repeats the
// same few paths, a tenth of them is plenty to look at, and the services
// follow the load generator's decision (parent-based sampling).
const loadSamplingRatio = "0.1"

// The UID and GID of the shopd image's non-root user.
const shopdUID = 65532

const portAdmin = render.AdminPortName

// Build returns the load generator and the synthetic check the Shop wants.
func Build(in render.Input) ([]client.Object, error) {
	ops := in.Spec.Operations
	var out []client.Object
	if ptr.Deref(ops.LoadGenerator.Enabled, false) {
		out = append(out, serviceAccount(in, LoadGenerator), loadGenerator(in))
	}
	if ptr.Deref(ops.SyntheticCheck.Enabled, false) {
		// A schedule that never runs twice is refused here, whether or not
		// alerts scale their windows by it: a CronJob with it would never run.
		if _, err := SyntheticPeriod(in); err != nil {
			return nil, err
		}
		out = append(out, serviceAccount(in, SyntheticCheck), syntheticCheck(in))
	}
	return out, nil
}

// serviceAccount gives each its own mesh identity (<shop>-loadgen,
// <shop>-synthetic), which the mesh's policies can grant.
func serviceAccount(in render.Input, component string) *corev1.ServiceAccount {
	return &corev1.ServiceAccount{ObjectMeta: in.ObjectMeta(in.Name(component), component), AutomountServiceAccountToken: ptr.To(false)}
}

func loadGenerator(in render.Input) *appsv1.Deployment {
	lg := in.Spec.Operations.LoadGenerator
	env := append(commonEnv(in, LoadGenerator, loadSamplingRatio),
		corev1.EnvVar{Name: "ADMIN_ADDR", Value: fmt.Sprintf(":%d", render.AdminPort)},
		corev1.EnvVar{Name: "LOADGEN_RPS", Value: fmt.Sprint(ptr.Deref(lg.RequestsPerSecond, 5))})
	if lg.Duration != nil && lg.Duration.Duration > 0 {
		env = append(env, corev1.EnvVar{Name: "LOADGEN_DURATION", Value: lg.Duration.Duration.String()})
	}
	c := container(in, LoadGenerator, env)
	c.Ports = []corev1.ContainerPort{{Name: portAdmin, ContainerPort: render.AdminPort, Protocol: corev1.ProtocolTCP}}
	c.LivenessProbe = &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString(portAdmin), Scheme: corev1.URISchemeHTTP}},
		PeriodSeconds: 10, FailureThreshold: 3, TimeoutSeconds: 2, SuccessThreshold: 1,
	}
	return &appsv1.Deployment{
		ObjectMeta: in.ObjectMeta(in.Name(LoadGenerator), LoadGenerator),
		Spec: appsv1.DeploymentSpec{
			// One load source: the rate is the Shop's, not per replica.
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: in.SelectorLabels(LoadGenerator)},
			// Never two at once while rolling: that would double the rate.
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: podMeta(in, LoadGenerator, false),
				Spec:       podSpec(in, LoadGenerator, c, corev1.RestartPolicyAlways),
			},
		},
	}
}

// SyntheticSchedule is the synthetic check's cron schedule.
func SyntheticSchedule(in render.Input) string {
	if s := in.Spec.Operations.SyntheticCheck.Schedule; s != "" {
		return s
	}
	return DefaultSchedule
}

// SyntheticPeriod is the longest gap between two synthetic runs, which the
// alerts on the check's metrics scale their windows by.
func SyntheticPeriod(in render.Input) (time.Duration, error) {
	p, err := backups.Period(SyntheticSchedule(in))
	if err != nil {
		return 0, fmt.Errorf("operations.syntheticCheck.schedule: %w", err)
	}
	return p, nil
}

func syntheticCheck(in render.Input) *batchv1.CronJob {
	c := container(in, SyntheticCheck, commonEnv(in, SyntheticCheck, "1.0"))
	return &batchv1.CronJob{
		ObjectMeta: in.ObjectMeta(in.Name(SyntheticCheck), SyntheticCheck),
		Spec: batchv1.CronJobSpec{
			Schedule: SyntheticSchedule(in),
			// A check that is still running is a finding, not a reason to pile up.
			ConcurrencyPolicy: batchv1.ForbidConcurrent,
			// A missed slot is skipped, not caught up later in a burst.
			StartingDeadlineSeconds:    ptr.To[int64](60),
			SuccessfulJobsHistoryLimit: ptr.To[int32](1),
			FailedJobsHistoryLimit:     ptr.To[int32](3),
			JobTemplate: batchv1.JobTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: in.Labels(SyntheticCheck)},
				Spec: batchv1.JobSpec{
					// One try: a retry would hide the failure the check exists to show.
					BackoffLimit:            ptr.To[int32](0),
					ActiveDeadlineSeconds:   ptr.To[int64](int64((2 * time.Minute).Seconds())),
					TTLSecondsAfterFinished: ptr.To[int32](3600),
					Template: corev1.PodTemplateSpec{
						ObjectMeta: podMeta(in, SyntheticCheck, true),
						Spec:       podSpec(in, SyntheticCheck, c, corev1.RestartPolicyNever),
					},
				},
			},
		},
	}
}

// IstioInjectLabel asks Istio to inject its sidecar into a pod.
const IstioInjectLabel = "sidecar.istio.io/inject"

// podMeta joins the mesh when the Shop's services are in it (with STRICT mTLS
// nothing outside the mesh reaches them). A Job's sidecar must end with the
// job: Istio's native sidecar (an init container that Kubernetes stops when
// the main container exits) does that.
func podMeta(in render.Input, component string, job bool) metav1.ObjectMeta {
	m := metav1.ObjectMeta{Labels: in.Labels(component)}
	if in.APIs.Istio && ptr.Deref(in.Spec.Gateway.Istio.Enabled, false) {
		m.Labels[IstioInjectLabel] = "true"
		m.Annotations = map[string]string{"proxy.istio.io/config": `{"holdApplicationUntilProxyStarts":true}`}
		if job {
			m.Annotations["sidecar.istio.io/nativeSidecar"] = "true"
		}
	}
	return m
}

func podSpec(in render.Input, component string, c corev1.Container, restart corev1.RestartPolicy) corev1.PodSpec {
	return corev1.PodSpec{
		ServiceAccountName:           in.Name(component),
		AutomountServiceAccountToken: ptr.To(false),
		EnableServiceLinks:           ptr.To(false),
		RestartPolicy:                restart,
		SecurityContext:              render.PodSecurity(shopdUID),
		Containers:                   []corev1.Container{c},
		Volumes:                      []corev1.Volume{{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
	}
}

func container(in render.Input, component string, env []corev1.EnvVar) corev1.Container {
	img := in.Spec.Image
	return corev1.Container{
		Name:            component,
		Image:           img.Repository + ":" + img.Tag,
		ImagePullPolicy: img.PullPolicy,
		Args:            []string{component},
		Env:             env,
		VolumeMounts:    []corev1.VolumeMount{{Name: "tmp", MountPath: "/tmp"}},
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("50m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
			// Registration hashes passwords (argon2id runs in auth, not
			// here), so memory stays small; the limit keeps a runaway
			// generator from starving the shop it measures.
			Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")},
		},
		SecurityContext:          render.ContainerSecurity(),
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
	}
}

// commonEnv: the services' URLs, telemetry and resource attributes. No
// PAYMENT_URL: only orders may call payment (docs/security.md), so the
// synthetic check leaves its test-card charge unrefunded.
func commonEnv(in render.Input, component, samplingRatio string) []corev1.EnvVar {
	v := func(name, value string) corev1.EnvVar { return corev1.EnvVar{Name: name, Value: value} }
	field := func(name, path string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: path}}}
	}
	env := []corev1.EnvVar{
		v("FRONTEND_URL", in.ServiceURL(render.Frontend)),
		v("AUTH_URL", in.ServiceURL(render.Auth)),
		v("CATALOG_URL", in.ServiceURL(render.Catalog)),
		v("ORDERS_URL", in.ServiceURL(render.Orders)),
		v("LOG_LEVEL", "info"),
		v("SHOP_NAME", in.Shop.Name),
		v("DEPLOYMENT_ENVIRONMENT", string(in.Spec.Environment)),
		v("OTEL_SERVICE_NAME", component),
		v("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
		v("OTEL_TRACES_SAMPLER_ARG", samplingRatio),
		field("K8S_POD_NAME", "metadata.name"),
		field("K8S_NAMESPACE_NAME", "metadata.namespace"),
		field("K8S_NODE_NAME", "spec.nodeName"),
	}
	if ep := in.OTLPEndpoint(); ep != "" {
		env = append(env, v("OTEL_EXPORTER_OTLP_ENDPOINT", ep), v("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"))
	}
	return env
}
