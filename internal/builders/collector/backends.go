package collector

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/shopplatform/shop-operator/internal/render"
)

// The backends a development or testing Shop runs next to itself: one
// replica each, for looking at traces and logs, not for production use.
const (
	jaegerHealthPort = 13133
	jaegerSpanTTL    = 72 * time.Hour
	jaegerDataSize   = "5Gi"
	lokiDataSize     = "10Gi"
	// Both images run as this user (jaegertracing/jaeger, grafana/loki).
	backendUID = 10001
	// ConfigHashAnnotation on a pod template restarts the pods when their
	// ConfigMap changes.
	ConfigHashAnnotation = "commerce.shopplatform.io/config-hash"
)

// jaegerObjects renders Jaeger v2 (itself a collector distribution): OTLP
// gRPC on 4317, the UI on 16686, memory or Badger storage.
func jaegerObjects(in render.Input) []client.Object {
	j := in.Spec.Observability.Jaeger
	name := in.Name(componentJaeger)
	badger := j.Storage == "badger"
	store := map[string]any{"memory": map[string]any{"max_traces": 100000}}
	if badger {
		store = map[string]any{"badger": map[string]any{
			"directories": map[string]any{"keys": "/badger/keys", "values": "/badger/values"},
			"ephemeral":   false,
			"ttl":         map[string]any{"spans": jaegerSpanTTL.String()},
		}}
	}
	cfg := map[string]any{
		"service": map[string]any{
			"extensions": []any{"jaeger_storage", "jaeger_query", "healthcheckv2"},
			"pipelines": map[string]any{"traces": map[string]any{
				"receivers": []any{"otlp"}, "processors": []any{"batch"}, "exporters": []any{"jaeger_storage_exporter"},
			}},
			"telemetry": map[string]any{
				"resource": map[string]any{"service.name": "jaeger"},
				"metrics": map[string]any{"level": "normal", "readers": []any{map[string]any{"pull": map[string]any{
					"exporter": map[string]any{"prometheus": map[string]any{"host": "0.0.0.0", "port": TelemetryPort}},
				}}}},
			},
		},
		"extensions": map[string]any{
			"healthcheckv2":  map[string]any{"use_v2": true, "http": map[string]any{"endpoint": fmt.Sprintf("0.0.0.0:%d", jaegerHealthPort)}},
			"jaeger_query":   map[string]any{"storage": map[string]any{"traces": "main"}},
			"jaeger_storage": map[string]any{"backends": map[string]any{"main": store}},
		},
		"receivers":  map[string]any{"otlp": otlpReceiverConfig(true)},
		"processors": map[string]any{"batch": map[string]any{}},
		"exporters":  map[string]any{"jaeger_storage_exporter": map[string]any{"trace_storage": "main"}},
	}
	data := mustYAML(cfg)

	var dataVolume corev1.VolumeSource
	var objs []client.Object
	if badger {
		pvc := dataClaim(in, name, componentJaeger, jaegerDataSize)
		objs = append(objs, pvc)
		dataVolume.PersistentVolumeClaim = &corev1.PersistentVolumeClaimVolumeSource{ClaimName: pvc.Name}
	} else {
		dataVolume.EmptyDir = &corev1.EmptyDirVolumeSource{}
	}
	container := corev1.Container{
		Name:  componentJaeger,
		Image: j.Image,
		Args:  []string{"--config=/etc/jaeger/config.yaml"},
		Ports: []corev1.ContainerPort{
			{Name: "otlp-grpc", ContainerPort: jaegerOTLPPort, Protocol: corev1.ProtocolTCP},
			{Name: "otlp-http", ContainerPort: 4318, Protocol: corev1.ProtocolTCP},
			{Name: "ui", ContainerPort: jaegerUIPort, Protocol: corev1.ProtocolTCP},
			{Name: "health", ContainerPort: jaegerHealthPort, Protocol: corev1.ProtocolTCP},
			{Name: "metrics", ContainerPort: TelemetryPort, Protocol: corev1.ProtocolTCP},
		},
		ReadinessProbe: httpProbe("/status", jaegerHealthPort),
		LivenessProbe:  httpProbe("/status", jaegerHealthPort),
		// Memory storage (development) keeps nothing on the data volume.
		Resources:       render.WithEphemeralStorage(in.Resources("50m", "128Mi", ""), resource.Quantity{}),
		SecurityContext: render.ContainerSecurity(),
		VolumeMounts: []corev1.VolumeMount{
			{Name: "config", MountPath: "/etc/jaeger", ReadOnly: true},
			{Name: "data", MountPath: "/badger"},
			{Name: "tmp", MountPath: "/tmp"},
		},
	}
	objs = append(objs,
		configMap(in, name, componentJaeger, "config.yaml", data),
		backendService(in, name, componentJaeger, []corev1.ServicePort{
			{Name: "grpc-otlp", Port: jaegerOTLPPort, TargetPort: intstr.FromString("otlp-grpc"), AppProtocol: ptr.To("grpc")},
			{Name: "http-otlp", Port: 4318, TargetPort: intstr.FromString("otlp-http")},
			{Name: "http-ui", Port: jaegerUIPort, TargetPort: intstr.FromString("ui")},
			{Name: "http-metrics", Port: TelemetryPort, TargetPort: intstr.FromString("metrics")},
		}),
		backendDeployment(in, name, componentJaeger, data, container, dataVolume),
	)
	return objs
}

// lokiObjects renders Loki in single-binary mode with filesystem storage
// and retention; it ingests OTLP at :3100/otlp.
func lokiObjects(in render.Input) []client.Object {
	l := in.Spec.Observability.Loki
	name := in.Name(componentLoki)
	retention := 72 * time.Hour
	if l.Retention != nil {
		retention = l.Retention.Duration
	}
	cfg := map[string]any{
		"auth_enabled": false,
		"server":       map[string]any{"http_listen_port": lokiPort, "grpc_listen_port": 9095, "log_level": "info"},
		"common": map[string]any{
			"instance_addr":      "127.0.0.1",
			"path_prefix":        "/var/loki",
			"replication_factor": 1,
			"ring":               map[string]any{"kvstore": map[string]any{"store": "inmemory"}},
			"storage": map[string]any{"filesystem": map[string]any{
				"chunks_directory": "/var/loki/chunks", "rules_directory": "/var/loki/rules",
			}},
		},
		"schema_config": map[string]any{"configs": []any{map[string]any{
			"from": "2024-04-01", "store": "tsdb", "object_store": "filesystem", "schema": "v13",
			"index": map[string]any{"prefix": "index_", "period": "24h"},
		}}},
		"limits_config": map[string]any{
			"retention_period":          model(retention),
			"allow_structured_metadata": true, // OTLP attributes land here
			"volume_enabled":            true,
		},
		"compactor": map[string]any{
			"working_directory":    "/var/loki/compactor",
			"retention_enabled":    true,
			"delete_request_store": "filesystem",
		},
		"ruler":       map[string]any{"rule_path": "/var/loki/rules-temp"},
		"analytics":   map[string]any{"reporting_enabled": false},
		"query_range": map[string]any{"results_cache": map[string]any{"cache": map[string]any{"embedded_cache": map[string]any{"enabled": true, "max_size_mb": 64}}}},
	}
	data := mustYAML(cfg)

	var objs []client.Object
	var dataVolume corev1.VolumeSource
	var onEmptyDir resource.Quantity
	if in.Spec.Environment == "development" {
		dataVolume.EmptyDir = &corev1.EmptyDirVolumeSource{}
		onEmptyDir = resource.MustParse(lokiDataSize)
	} else {
		pvc := dataClaim(in, name, componentLoki, lokiDataSize)
		objs = append(objs, pvc)
		dataVolume.PersistentVolumeClaim = &corev1.PersistentVolumeClaimVolumeSource{ClaimName: pvc.Name}
	}
	container := corev1.Container{
		Name:  componentLoki,
		Image: l.Image,
		Args:  []string{"-config.file=/etc/loki/config.yaml", "-target=all"},
		Ports: []corev1.ContainerPort{
			{Name: "http", ContainerPort: lokiPort, Protocol: corev1.ProtocolTCP},
			{Name: "grpc", ContainerPort: 9095, Protocol: corev1.ProtocolTCP},
		},
		ReadinessProbe:  httpProbe("/ready", lokiPort),
		Resources:       render.WithEphemeralStorage(in.Resources("100m", "256Mi", ""), onEmptyDir),
		SecurityContext: render.ContainerSecurity(),
		VolumeMounts: []corev1.VolumeMount{
			{Name: "config", MountPath: "/etc/loki", ReadOnly: true},
			{Name: "data", MountPath: "/var/loki"},
			{Name: "tmp", MountPath: "/tmp"},
		},
	}
	objs = append(objs,
		configMap(in, name, componentLoki, "config.yaml", data),
		backendService(in, name, componentLoki, []corev1.ServicePort{
			{Name: "http", Port: lokiPort, TargetPort: intstr.FromString("http")},
			{Name: "grpc", Port: 9095, TargetPort: intstr.FromString("grpc"), AppProtocol: ptr.To("grpc")},
		}),
		backendDeployment(in, name, componentLoki, data, container, dataVolume),
	)
	return objs
}

// model formats a duration the way Loki's config expects (e.g. 72h, 90m).
func model(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return fmt.Sprintf("%ds", d/time.Second)
}

func backendDeployment(in render.Input, name, component, config string, c corev1.Container, data corev1.VolumeSource) *appsv1.Deployment {
	sum := sha256.Sum256([]byte(config))
	return &appsv1.Deployment{
		ObjectMeta: in.ObjectMeta(name, component),
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: in.SelectorLabels(component)},
			// One writer on the data volume: stop the old pod first.
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{
					Labels:      in.Labels(component),
					Annotations: map[string]string{ConfigHashAnnotation: hex.EncodeToString(sum[:8])},
				},
				Spec: corev1.PodSpec{
					AutomountServiceAccountToken: ptr.To(false),
					SecurityContext:              render.PodSecurity(backendUID),
					Containers:                   []corev1.Container{c},
					Volumes: []corev1.Volume{
						{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
							LocalObjectReference: corev1.LocalObjectReference{Name: name},
						}}},
						{Name: "data", VolumeSource: data},
						{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
					},
				},
			},
		},
	}
}

func backendService(in render.Input, name, component string, ports []corev1.ServicePort) *corev1.Service {
	for i := range ports {
		ports[i].Protocol = corev1.ProtocolTCP
	}
	return &corev1.Service{
		ObjectMeta: in.ObjectMeta(name, component),
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeClusterIP,
			Selector: in.SelectorLabels(component),
			Ports:    ports,
		},
	}
}

func configMap(in render.Input, name, component, key, data string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: in.ObjectMeta(name, component), Data: map[string]string{key: data}}
}

func dataClaim(in render.Input, name, component, size string) *corev1.PersistentVolumeClaim {
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: in.ObjectMeta(name+"-data", component),
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)}},
		},
	}
}

func httpProbe(path string, port int32) *corev1.Probe {
	return &corev1.Probe{
		ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromInt32(port)}},
		PeriodSeconds:    10,
		FailureThreshold: 6,
	}
}

// mustYAML marshals a config built from plain maps, which cannot fail.
func mustYAML(v any) string {
	b, err := yaml.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}
