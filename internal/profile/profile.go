// Package profile turns a Shop's spec into the complete spec that the builders
// render: the defaults of its environment, with every value the user set laid
// over them. It is pure: same input, same output, no I/O.
//
// The table of defaults is written up in docs/profiles.md; TestDocsTable keeps
// the two in step.
package profile

import (
	"reflect"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/version"
)

type shopSpec = shopv1.ShopSpec

// Resolved is a Shop's spec with every default filled in, plus the switches
// that only the profile decides (they are not user-facing fields).
type Resolved struct {
	shopv1.ShopSpec

	// PodDisruptionBudgets for every multi-replica workload.
	PodDisruptionBudgets bool
	// TopologySpread spreads replicas over zones and nodes.
	TopologySpread bool
}

// Resolve returns the effective spec of a Shop: profile defaults of its
// environment, overridden by every value the user set.
func Resolve(spec shopv1.ShopSpec) Resolved {
	env := spec.Environment
	if env == "" {
		env = shopv1.Development
	}
	r := Defaults(env)
	user := spec.DeepCopy()
	user.Environment = env
	overlay(reflect.ValueOf(&r.ShopSpec).Elem(), reflect.ValueOf(user).Elem())
	// An external database replaces the managed default rather than joining it.
	for _, db := range []*shopv1.DatabaseSpec{&r.Databases.Auth, &r.Databases.Catalog, &r.Databases.Orders} {
		if db.External != nil {
			db.Managed = nil
		}
	}
	return r
}

// Defaults returns the complete defaults of one environment.
func Defaults(env shopv1.Environment) Resolved {
	switch env {
	case shopv1.Production:
		return production()
	case shopv1.Testing:
		return testing()
	default:
		return development()
	}
}

// size is a compact description of one environment's scale.
type size struct {
	frontendReplicas, replicas int32
	autoscaling                bool
	logLevel                   shopv1.LogLevel
	cpu, memory                string // per service container request
	dbCPU, dbMemory            string
	dbStorage                  string
	dbEphemeral                bool
	backups                    bool // on by default; schedule and retain apply when a Shop turns them on
	backupSchedule             string
	backupRetain               int32
	sampling                   int32
	tailSampling               bool
	collectorReplicas          int32
	mtls                       shopv1.MTLSMode
	backends                   shopv1.BackendMode // Deploy: Jaeger and Loki run in the namespace
	jaegerStorage              string
	lokiRetention              time.Duration
	scrapeInterval             string
	rules, routing             bool
	availability, latencyGoal  string
	loadGenerator, synthetic   bool
}

func development() Resolved {
	return build(shopv1.Development, size{
		frontendReplicas: 1, replicas: 1, logLevel: "debug",
		cpu: "50m", memory: "64Mi", dbCPU: "50m", dbMemory: "128Mi",
		dbStorage: "1Gi", dbEphemeral: true, backupSchedule: "0 3 * * *", backupRetain: 3,
		sampling: 100, collectorReplicas: 1, mtls: "PERMISSIVE",
		backends: shopv1.BackendDeploy, jaegerStorage: "memory", lokiRetention: 24 * time.Hour,
		scrapeInterval: "30s", availability: "99", latencyGoal: "95",
	})
}

func testing() Resolved {
	return build(shopv1.Testing, size{
		frontendReplicas: 1, replicas: 1, logLevel: "info",
		cpu: "50m", memory: "64Mi", dbCPU: "100m", dbMemory: "256Mi",
		dbStorage: "2Gi", backups: true, backupSchedule: "0 3 * * *", backupRetain: 7,
		sampling: 100, collectorReplicas: 1, mtls: "STRICT",
		backends: shopv1.BackendDeploy, jaegerStorage: "badger", lokiRetention: 72 * time.Hour,
		scrapeInterval: "30s", rules: true, routing: true, availability: "99.5", latencyGoal: "99",
		loadGenerator: true, synthetic: true,
	})
}

func production() Resolved {
	r := build(shopv1.Production, size{
		frontendReplicas: 3, replicas: 2, autoscaling: true, logLevel: "info",
		cpu: "100m", memory: "128Mi", dbCPU: "250m", dbMemory: "512Mi",
		dbStorage: "20Gi", backups: true, backupSchedule: "0 * * * *", backupRetain: 48,
		sampling: 10, tailSampling: true, collectorReplicas: 2, mtls: "STRICT",
		backends: shopv1.BackendExternal, lokiRetention: 168 * time.Hour,
		scrapeInterval: "15s", rules: true, routing: true, availability: "99.9", latencyGoal: "99",
	})
	r.PodDisruptionBudgets, r.TopologySpread = true, true
	return r
}

func build(env shopv1.Environment, s size) Resolved {
	workload := func(replicas int32) shopv1.WorkloadSpec {
		w := shopv1.WorkloadSpec{
			Replicas:  ptr.To(replicas),
			LogLevel:  s.logLevel,
			Resources: resources(s.cpu, s.memory, env == shopv1.Production),
			Autoscaling: &shopv1.AutoscalingSpec{
				Enabled:              ptr.To(s.autoscaling),
				MinReplicas:          ptr.To(replicas),
				MaxReplicas:          ptr.To(max(replicas*4, 4)),
				TargetCPUUtilization: ptr.To[int32](70),
			},
		}
		return w
	}
	db := func() shopv1.DatabaseSpec {
		backup := &shopv1.BackupSpec{
			Enabled:     ptr.To(s.backups),
			Schedule:    s.backupSchedule,
			Retain:      ptr.To(s.backupRetain),
			StorageSize: ptr.To(resource.MustParse(s.dbStorage)),
		}
		return shopv1.DatabaseSpec{Managed: &shopv1.ManagedDatabase{
			Version:     "16",
			StorageSize: ptr.To(resource.MustParse(s.dbStorage)),
			Ephemeral:   ptr.To(s.dbEphemeral),
			Resources:   resources(s.dbCPU, s.dbMemory, env == shopv1.Production),
			Backup:      backup,
		}}
	}
	deployBackends := s.backends == shopv1.BackendDeploy
	return Resolved{ShopSpec: shopv1.ShopSpec{
		Environment: env,
		Image: shopv1.ImageSpec{
			Repository: version.ServicesImage,
			Tag:        version.Version,
			PullPolicy: corev1.PullIfNotPresent,
		},
		Workloads: shopv1.Workloads{
			Frontend: workload(s.frontendReplicas),
			Auth:     workload(s.replicas),
			Catalog:  workload(s.replicas),
			Orders:   workload(s.replicas),
			Payment:  workload(s.replicas),
		},
		Databases: shopv1.Databases{Auth: db(), Catalog: db(), Orders: db()},
		Gateway: shopv1.GatewaySpec{
			Istio: shopv1.IstioSpec{
				Enabled:         ptr.To(true),
				MTLSMode:        s.mtls,
				GatewaySelector: map[string]string{"istio": "ingressgateway"},
			},
		},
		Observability: shopv1.ObservabilitySpec{
			Collector: shopv1.CollectorSpec{
				Enabled:            ptr.To(true),
				Replicas:           ptr.To(s.collectorReplicas),
				Image:              "otel/opentelemetry-collector-contrib:0.161.0",
				SamplingPercentage: ptr.To(s.sampling),
				TailSampling:       ptr.To(s.tailSampling),
				SlowTraceThreshold: &metav1.Duration{Duration: time.Second},
				Resources:          resources("100m", "256Mi", env == shopv1.Production),
			},
			Jaeger: shopv1.JaegerSpec{
				Enabled: ptr.To(deployBackends), Mode: s.backends,
				Storage: s.jaegerStorage, Image: "jaegertracing/jaeger:2.11.0",
			},
			Loki: shopv1.LokiSpec{
				Enabled: ptr.To(deployBackends), Mode: s.backends,
				Retention: &metav1.Duration{Duration: s.lokiRetention}, Image: "grafana/loki:3.5.0",
			},
			Datadog:  shopv1.DatadogSpec{Enabled: ptr.To(false), Site: "datadoghq.com"},
			NewRelic: shopv1.NewRelicSpec{Enabled: ptr.To(false), Region: "US"},
			Prometheus: shopv1.PrometheusSpec{
				ServiceMonitors: ptr.To(true),
				Rules:           ptr.To(s.rules),
				ScrapeInterval:  s.scrapeInterval,
			},
			Grafana: shopv1.GrafanaSpec{
				Dashboards: ptr.To(true),
				Folder:     "Shop",
				Labels:     map[string]string{"grafana_dashboard": "1"},
			},
			Alerting: shopv1.AlertingSpec{
				Routing: ptr.To(s.routing),
				SLO: shopv1.SLOSpec{
					Availability:     s.availability,
					LatencyThreshold: &metav1.Duration{Duration: 500 * time.Millisecond},
					LatencyTarget:    s.latencyGoal,
				},
			},
		},
		Operations: shopv1.OperationsSpec{
			LoadGenerator:  shopv1.LoadGeneratorSpec{Enabled: ptr.To(s.loadGenerator), RequestsPerSecond: ptr.To[int32](5)},
			SyntheticCheck: shopv1.SyntheticCheckSpec{Enabled: ptr.To(s.synthetic), Schedule: "*/5 * * * *"},
			// Off everywhere: only a Shop that asks for it fails on purpose.
			FaultInjection: shopv1.FaultInjectionSpec{Payment: &shopv1.PaymentFaultSpec{
				ErrorPercent: ptr.To[int32](0), Latency: &metav1.Duration{},
			}},
		},
	}}
}

// resources returns requests, and limits when asked (production sets limits
// everywhere; elsewhere limits only get in the way of small clusters).
func resources(cpu, memory string, limits bool) *corev1.ResourceRequirements {
	r := &corev1.ResourceRequirements{Requests: corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse(cpu),
		corev1.ResourceMemory: resource.MustParse(memory),
	}}
	if limits {
		c, m := r.Requests[corev1.ResourceCPU], r.Requests[corev1.ResourceMemory]
		// Room for bursts: 4x the CPU request, 2x the memory request.
		r.Limits = corev1.ResourceList{
			corev1.ResourceCPU:    *resource.NewMilliQuantity(c.MilliValue()*4, resource.DecimalSI),
			corev1.ResourceMemory: *resource.NewQuantity(m.Value()*2, resource.BinarySI),
		}
	}
	return r
}
