// Package v1alpha1 contains the Shop API: one custom resource that describes a
// complete, observable online shop.
// +kubebuilder:object:generate=true
// +groupName=commerce.shopplatform.io
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of the Shop API.
	GroupVersion = schema.GroupVersion{Group: "commerce.shopplatform.io", Version: "v1alpha1"}

	// SchemeBuilder registers the API types with a runtime scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the API types to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
