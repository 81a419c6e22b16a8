package workloads

import (
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/render"
)

// podDisruptionBudget lets voluntary disruptions (node drains, upgrades) take
// one pod at a time, when the profile wants budgets and there is more than one.
func podDisruptionBudget(in render.Input, svc string, w shopv1.WorkloadSpec) *policyv1.PodDisruptionBudget {
	if !in.Spec.PodDisruptionBudgets || minReplicas(w) <= 1 {
		return nil
	}
	return &policyv1.PodDisruptionBudget{
		ObjectMeta: in.ObjectMeta(in.Name(svc), svc),
		Spec: policyv1.PodDisruptionBudgetSpec{
			MaxUnavailable: ptr.To(intstr.FromInt32(1)),
			Selector:       &metav1.LabelSelector{MatchLabels: in.SelectorLabels(svc)},
		},
	}
}

// horizontalPodAutoscaler scales a service on CPU utilisation of its request.
func horizontalPodAutoscaler(in render.Input, svc string, w shopv1.WorkloadSpec) *autoscalingv2.HorizontalPodAutoscaler {
	if !autoscaled(w) {
		return nil
	}
	a := w.Autoscaling
	return &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: in.ObjectMeta(in.Name(svc), svc),
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: in.Name(svc)},
			MinReplicas:    ptr.To(minReplicas(w)),
			MaxReplicas:    max(ptr.Deref(a.MaxReplicas, 1), minReplicas(w)),
			Metrics: []autoscalingv2.MetricSpec{{
				Type: autoscalingv2.ResourceMetricSourceType,
				Resource: &autoscalingv2.ResourceMetricSource{
					Name: corev1.ResourceCPU,
					Target: autoscalingv2.MetricTarget{
						Type:               autoscalingv2.UtilizationMetricType,
						AverageUtilization: ptr.To(ptr.Deref(a.TargetCPUUtilization, 70)),
					},
				},
			}},
		},
	}
}

// topologySpread prefers spreading a service's pods over zones, then nodes,
// without ever leaving a pod unscheduled for it.
func topologySpread(in render.Input, svc string) []corev1.TopologySpreadConstraint {
	spread := func(key string) corev1.TopologySpreadConstraint {
		return corev1.TopologySpreadConstraint{
			MaxSkew:           1,
			TopologyKey:       key,
			WhenUnsatisfiable: corev1.ScheduleAnyway,
			LabelSelector:     &metav1.LabelSelector{MatchLabels: in.SelectorLabels(svc)},
			// Count only the pods of the current revision during a rollout.
			MatchLabelKeys: []string{"pod-template-hash"},
		}
	}
	return []corev1.TopologySpreadConstraint{spread(corev1.LabelTopologyZone), spread(corev1.LabelHostname)}
}
