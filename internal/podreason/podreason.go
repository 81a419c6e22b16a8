// Package podreason says, in the kubelet's and the scheduler's words, why a
// pod is not ready: the local cluster's progress, the demo and the Shop's
// WorkloadsReady and DatabasesReady conditions use it.
package podreason

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Ready is what Of says of a pod that is ready.
const Ready = "ready"

// Of is why p is not ready: a container's waiting reason and message (image
// missing, crash loop, config error), a container that exited, a running
// container whose readiness probe fails, an unschedulable pod or an unbound
// claim (the scheduler's message), else the pod's phase; Ready when it is.
func Of(p *corev1.Pod) string {
	statuses := append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...)
	for _, cs := range statuses {
		if w := cs.State.Waiting; w != nil && w.Reason != "" {
			msg := "container " + cs.Name + " " + w.Reason
			if w.Message != "" {
				msg += ": " + short(w.Message)
			}
			return msg
		}
		if t := cs.State.Terminated; t != nil && t.ExitCode != 0 {
			return fmt.Sprintf("container %s exited %d (%s)", cs.Name, t.ExitCode, t.Reason)
		}
	}
	for _, cs := range p.Status.ContainerStatuses {
		if cs.State.Running != nil && !cs.Ready {
			return "container " + cs.Name + " running, not ready (readiness probe)"
		}
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
			return "unschedulable: " + short(c.Message)
		}
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return Ready
		}
	}
	return string(p.Status.Phase)
}

// short is the first line of s, at most 160 bytes.
func short(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 160 {
		s = s[:160] + "..."
	}
	return s
}
