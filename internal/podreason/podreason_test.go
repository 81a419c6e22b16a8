package podreason

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestOf(t *testing.T) {
	waiting := func(reason, msg string) corev1.ContainerStatus {
		return corev1.ContainerStatus{Name: "orders", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: msg}}}
	}
	for name, tc := range map[string]struct {
		status corev1.PodStatus
		want   string
	}{
		"crash loop": {corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{
			waiting("CrashLoopBackOff", "back-off 40s restarting failed container=orders pod=x\nmore")}},
			"container orders CrashLoopBackOff: back-off 40s restarting failed container=orders pod=x"},
		"image missing": {corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{
			waiting("ErrImageNeverPull", `Container image "postgres:16-alpine" is not present with pull policy of Never`)}},
			`container orders ErrImageNeverPull: Container image "postgres:16-alpine" is not present with pull policy of Never`},
		"init container first": {corev1.PodStatus{Phase: corev1.PodPending,
			InitContainerStatuses: []corev1.ContainerStatus{{Name: "migrate", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 2, Reason: "Error"}}}},
			ContainerStatuses:     []corev1.ContainerStatus{waiting("PodInitializing", "")}},
			"container migrate exited 2 (Error)"},
		"probe failing": {corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{
			{Name: "orders", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}},
			"container orders running, not ready (readiness probe)"},
		"unschedulable": {corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse,
			Message: `0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims.`}}},
			"unschedulable: 0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims."},
		"ready": {corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "orders", Ready: true, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}},
			Ready},
		"nothing yet": {corev1.PodStatus{Phase: corev1.PodPending}, "Pending"},
	} {
		if got := Of(&corev1.Pod{Status: tc.status}); got != tc.want {
			t.Errorf("%s: %q, want %q", name, got, tc.want)
		}
	}
	long := strings.Repeat("x", 400)
	if got := Of(&corev1.Pod{Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{waiting("CreateContainerConfigError", long)}}}); len(got) > 220 {
		t.Errorf("a long message is not shortened: %d bytes", len(got))
	}
}
