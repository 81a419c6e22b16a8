package controllers

import (
	"strings"

	"github.com/fluxcd/pkg/ssa"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
)

// securityKinds are the children whose every change the operator reports as
// an event of its own on the Shop: who may call whom, what a workload may do
// in the cluster, credentials, and the edge's TLS.
var securityKinds = map[schema.GroupKind]bool{
	{Group: "security.istio.io", Kind: "AuthorizationPolicy"}:   true,
	{Group: "security.istio.io", Kind: "PeerAuthentication"}:    true,
	{Group: "security.istio.io", Kind: "RequestAuthentication"}: true,
	{Group: "networking.istio.io", Kind: "Gateway"}:             true, // TLS and the HTTPS redirect
	{Group: "networking.k8s.io", Kind: "NetworkPolicy"}:         true,
	{Group: "rbac.authorization.k8s.io", Kind: "Role"}:          true,
	{Group: "rbac.authorization.k8s.io", Kind: "RoleBinding"}:   true,
	{Group: "", Kind: "ServiceAccount"}:                         true,
	{Group: "", Kind: "Secret"}:                                 true, // the generated ones: prune never deletes Secrets
}

// Event reasons for security-relevant children.
const (
	ReasonSecurityObjectChanged = "SecurityObjectChanged"
	ReasonSecurityObjectDeleted = "SecurityObjectDeleted"
)

// recordSecurityChanges emits one event per security-relevant child that was
// created, configured or deleted, e.g. "created AuthorizationPolicy
// shop-a-deny-all". It names the object, never its content.
func (r *ShopReconciler) recordSecurityChanges(shop *shopv1.Shop, entries []ssa.ChangeSetEntry) {
	for _, e := range entries {
		if !securityKinds[e.ObjMetadata.GroupKind] {
			continue
		}
		reason, action := ReasonSecurityObjectChanged, "Update"
		switch e.Action {
		case ssa.CreatedAction:
			action = "Create"
		case ssa.ConfiguredAction:
		case ssa.DeletedAction:
			reason, action = ReasonSecurityObjectDeleted, "Delete"
		default:
			continue // unchanged, skipped
		}
		// The child is the event's related object: events of one Shop with
		// the same reason and action but another related object are not
		// folded into one series (the events API ignores the message there).
		child := &unstructured.Unstructured{}
		// ssa's entries carry the version alone, prune's group/version.
		version := e.GroupVersion[strings.LastIndex(e.GroupVersion, "/")+1:]
		child.SetAPIVersion(schema.GroupVersion{Group: e.ObjMetadata.GroupKind.Group, Version: version}.String())
		child.SetKind(e.ObjMetadata.GroupKind.Kind)
		child.SetNamespace(e.ObjMetadata.Namespace)
		child.SetName(e.ObjMetadata.Name)
		r.Events.Eventf(shop, child, corev1.EventTypeNormal, reason, action,
			"%s %s %s", e.Action, e.ObjMetadata.GroupKind.Kind, e.ObjMetadata.Name)
	}
}
