// Package validate checks a Shop offline exactly as the API server does when
// it is created or updated: it loads the generated CRD and runs the API
// server's own code from k8s.io/apiextensions-apiserver (the approach of
// sigs.k8s.io/kubectl-validate): unknown fields are found by structural
// pruning, defaults are applied, then the custom resource strategy validates
// metadata, the OpenAPI schema, list types and the CEL x-kubernetes-validations
// rules, with transition rules (oldSelf) when an old object is given. Its
// messages are therefore the API server's.
package validate

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	apiextensionsinternal "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsvalidation "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/validation"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	structuraldefaulting "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	schemaobjectmeta "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/objectmeta"
	structuralpruning "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apiextensions-apiserver/pkg/crdserverscheme"
	"k8s.io/apiextensions-apiserver/pkg/registry/customresource"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/rest"
	"sigs.k8s.io/yaml"

	"github.com/shopplatform/shop-operator/config/crd"
)

// Validator validates objects of one kind of custom resource against its CRD.
type Validator struct {
	gvk        schema.GroupVersionKind
	structural *structuralschema.Structural
	strategy   strategy
}

// strategy is what the API server's registry calls around create and update.
type strategy interface {
	rest.RESTCreateStrategy
	rest.RESTUpdateStrategy
}

// New builds a validator for the served version of a CRD (YAML or JSON).
func New(crdManifest []byte) (*Validator, error) {
	var v1crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.UnmarshalStrict(crdManifest, &v1crd); err != nil {
		return nil, fmt.Errorf("reading the CRD: %w", err)
	}
	var internal apiextensionsinternal.CustomResourceDefinition
	if err := apiextensionsv1.Convert_v1_CustomResourceDefinition_To_apiextensions_CustomResourceDefinition(&v1crd, &internal, nil); err != nil {
		return nil, fmt.Errorf("converting the CRD: %w", err)
	}
	// Refuse a CRD the API server would refuse (e.g. a CEL rule that does not
	// compile), rather than validate against rules that are never enforced.
	// Status is what the API server's CRD strategy sets on create.
	internal.Status = apiextensionsinternal.CustomResourceDefinitionStatus{}
	for _, v := range internal.Spec.Versions {
		if v.Storage {
			internal.Status.StoredVersions = []string{v.Name}
		}
	}
	if errs := apiextensionsvalidation.ValidateCustomResourceDefinition(context.Background(), &internal); len(errs) > 0 {
		return nil, apierrors.NewInvalid(apiextensionsv1.Kind("CustomResourceDefinition"), internal.Name, errs)
	}
	// As the API server's CRD handler does: per served version, its schema
	// converted to the internal form.
	var version *apiextensionsv1.CustomResourceDefinitionVersion
	for i := range v1crd.Spec.Versions {
		if v1crd.Spec.Versions[i].Served && v1crd.Spec.Versions[i].Storage {
			version = &v1crd.Spec.Versions[i]
		}
	}
	if version == nil || version.Schema == nil || version.Schema.OpenAPIV3Schema == nil {
		return nil, fmt.Errorf("CRD %s has no served storage version with a schema", internal.Name)
	}
	var validation apiextensionsinternal.CustomResourceValidation
	if err := apiextensionsv1.Convert_v1_CustomResourceValidation_To_apiextensions_CustomResourceValidation(version.Schema, &validation, nil); err != nil {
		return nil, fmt.Errorf("converting the CRD schema: %w", err)
	}
	openAPI := validation.OpenAPIV3Schema

	// Then a structural schema with defaults pruned, and a schema validator
	// from the same OpenAPI schema.
	s, err := structuralschema.NewStructural(openAPI)
	if err != nil {
		return nil, fmt.Errorf("CRD %s: schema is not structural: %w", internal.Name, err)
	}
	s = s.DeepCopy()
	if err := structuraldefaulting.PruneDefaults(s); err != nil {
		return nil, fmt.Errorf("CRD %s: pruning defaults: %w", internal.Name, err)
	}
	schemaValidator, _, err := apiservervalidation.NewSchemaValidator(openAPI)
	if err != nil {
		return nil, fmt.Errorf("CRD %s: %w", internal.Name, err)
	}
	var statusValidator apiservervalidation.SchemaValidator
	if status, ok := openAPI.Properties["status"]; ok {
		if statusValidator, _, err = apiservervalidation.NewSchemaValidator(&status); err != nil {
			return nil, fmt.Errorf("CRD %s: status: %w", internal.Name, err)
		}
	}
	var sub apiextensionsinternal.CustomResourceSubresources
	if version.Subresources != nil {
		if err := apiextensionsv1.Convert_v1_CustomResourceSubresources_To_apiextensions_CustomResourceSubresources(version.Subresources, &sub, nil); err != nil {
			return nil, fmt.Errorf("converting the CRD subresources: %w", err)
		}
	}

	gvk := schema.GroupVersionKind{Group: internal.Spec.Group, Version: version.Name, Kind: internal.Spec.Names.Kind}
	st := customresource.NewStrategy(
		crdserverscheme.NewUnstructuredObjectTyper(),
		internal.Spec.Scope == apiextensionsinternal.NamespaceScoped,
		gvk, schemaValidator, statusValidator, s, sub.Status, sub.Scale, nil,
	)
	return &Validator{gvk: gvk, structural: s, strategy: st}, nil
}

var shopValidator = sync.OnceValues(func() (*Validator, error) { return New(crd.Shop) })

// ForShop returns the validator of the embedded Shop CRD.
func ForShop() *Validator {
	v, err := shopValidator()
	if err != nil {
		// The CRD is generated and embedded at build time: a failure here is
		// a build defect, caught by this package's tests.
		panic(err)
	}
	return v
}

// Shop validates a Shop (and, when old is not nil, the update from old to obj)
// with the embedded CRD. See Validator.Validate.
func Shop(obj, old *unstructured.Unstructured) field.ErrorList {
	_, errs := ForShop().Validate(obj, old)
	return errs
}

// GroupVersionKind is the kind this validator checks.
func (v *Validator) GroupVersionKind() schema.GroupVersionKind { return v.gvk }

// Validate checks obj as the API server checks a create (old == nil) or an
// update from old. It returns the object as the API server would store it
// (unknown fields dropped, defaults applied, status dropped, generation set)
// and every error found. Unknown fields are errors, as with kubectl's default
// strict field validation. Neither argument is modified. An object without a
// namespace is checked as if it were in "default".
func (v *Validator) Validate(obj, old *unstructured.Unstructured) (*unstructured.Unstructured, field.ErrorList) {
	if gvk := obj.GroupVersionKind(); gvk != v.gvk {
		return nil, field.ErrorList{field.Invalid(field.NewPath("apiVersion"), obj.GetAPIVersion()+", Kind="+obj.GetKind(),
			fmt.Sprintf("expected apiVersion %s and kind %s", v.gvk.GroupVersion(), v.gvk.Kind))}
	}
	u, err := normalize(obj)
	if err != nil {
		return nil, field.ErrorList{field.Invalid(field.NewPath(""), field.OmitValueType{}, err.Error())}
	}
	errs := v.coerce(u)
	ctx := genericapirequest.WithNamespace(context.Background(), u.GetNamespace())
	if old == nil {
		v.strategy.PrepareForCreate(ctx, u)
		errs = append(errs, rest.ValidateCreate(ctx, u, v.strategy)...)
		return u, errs
	}

	o, err := normalize(old)
	if err != nil {
		return nil, field.ErrorList{field.Invalid(field.NewPath("old"), field.OmitValueType{}, err.Error())}
	}
	if oldErrs := v.coerce(o); len(oldErrs) > 0 {
		return u, append(errs, field.Invalid(field.NewPath("old"), o.GetName(), "the old object is not valid: "+oldErrs.ToAggregate().Error()))
	}
	// What rest.BeforeUpdate carries over from the stored object.
	u.SetGeneration(o.GetGeneration())
	if u.GetUID() == "" {
		u.SetUID(o.GetUID())
	}
	if o.GetResourceVersion() == "" {
		o.SetResourceVersion("1") // an offline old object was never stored
	}
	if u.GetResourceVersion() == "" {
		u.SetResourceVersion(o.GetResourceVersion())
	}
	u.SetCreationTimestamp(o.GetCreationTimestamp())
	v.strategy.PrepareForUpdate(ctx, u, o)
	errs = append(errs, rest.ValidateUpdate(ctx, u, o, v.strategy)...)
	return u, errs
}

// normalize copies obj as the API server decodes it from JSON (integers as
// int64, as CEL and the schema validator expect; YAML decoders give float64),
// in the namespace "default" when it has none.
func normalize(obj *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	data, err := json.Marshal(obj.Object)
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(data); err != nil {
		return nil, err
	}
	if u.GetNamespace() == "" {
		u.SetNamespace("default")
	}
	return u, nil
}

// coerce does what the API server's decoder does to a custom resource before
// validation: drop (and report) unknown fields and nulls, coerce metadata,
// apply the schema's defaults.
func (v *Validator) coerce(u *unstructured.Unstructured) field.ErrorList {
	var errs field.ErrorList
	kind, apiVersion := u.GetKind(), u.GetAPIVersion()
	meta, hasMeta, unknownMeta, err := schemaobjectmeta.GetObjectMetaWithOptions(u.Object, schemaobjectmeta.ObjectMetaOptions{ReturnUnknownFieldPaths: true})
	if err != nil {
		return field.ErrorList{field.Invalid(field.NewPath("metadata"), field.OmitValueType{}, err.Error())}
	}
	unknown := append([]string(nil), unknownMeta...)
	unknown = append(unknown, structuralpruning.PruneWithOptions(u.Object, v.structural, true, structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true})...)
	structuraldefaulting.PruneNonNullableNullsWithoutDefaults(u.Object, v.structural)
	ferr, metaPaths := schemaobjectmeta.CoerceWithOptions(nil, u.Object, v.structural, false, schemaobjectmeta.CoerceOptions{ReturnUnknownFieldPaths: true})
	if ferr != nil {
		errs = append(errs, ferr)
	}
	unknown = append(unknown, metaPaths...)
	for _, p := range unknown {
		errs = append(errs, field.Invalid(pathOf(p), field.OmitValueType{}, fmt.Sprintf("unknown field %q", p)))
	}
	u.SetKind(kind)
	u.SetAPIVersion(apiVersion)
	if hasMeta {
		if err := schemaobjectmeta.SetObjectMeta(u.Object, meta); err != nil {
			errs = append(errs, field.Invalid(field.NewPath("metadata"), field.OmitValueType{}, err.Error()))
		}
	}
	structuraldefaulting.Default(u.Object, v.structural)
	return errs
}

func pathOf(dotted string) *field.Path {
	parts := strings.Split(dotted, ".")
	return field.NewPath(parts[0], parts[1:]...)
}

// Error turns errors found in obj into the error the API server returns,
// e.g. `Shop.commerce.shopplatform.io "demo" is invalid: [spec.environment: ...]`.
func (v *Validator) Error(obj *unstructured.Unstructured, errs field.ErrorList) error {
	if len(errs) == 0 {
		return nil
	}
	return apierrors.NewInvalid(v.gvk.GroupKind(), obj.GetName(), errs)
}
