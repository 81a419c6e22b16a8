package render

import (
	"fmt"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
)

// Workload returns the resolved settings of one of the five services (the
// zero WorkloadSpec for another name).
func (in Input) Workload(svc string) shopv1.WorkloadSpec {
	w := in.Spec.Workloads
	return map[string]shopv1.WorkloadSpec{
		Frontend: w.Frontend, Auth: w.Auth, Catalog: w.Catalog, Orders: w.Orders, Payment: w.Payment,
	}[svc]
}

// Database returns the resolved database of a service (the zero DatabaseSpec
// for a service without one, see Databases).
func (in Input) Database(svc string) shopv1.DatabaseSpec {
	d := in.Spec.Databases
	return map[string]shopv1.DatabaseSpec{Auth: d.Auth, Catalog: d.Catalog, Orders: d.Orders}[svc]
}

// ManagedDatabase returns the Postgres the operator runs for a service, or
// nil when the service's database is external (profile.Resolve drops the
// managed default then) or it has none. It is the one meaning of "managed".
func (in Input) ManagedDatabase(svc string) *shopv1.ManagedDatabase {
	return in.Database(svc).Managed
}

// ExternalDatabase returns the external database of a service, or nil when
// the operator runs it (or the service has none).
func (in Input) ExternalDatabase(svc string) *shopv1.ExternalDatabase {
	return in.Database(svc).External
}

// GeneratedValues returns the values generated for the Secret name (see
// package secrets and engine.Prepare), each of keys present.
func (in Input) GeneratedValues(name string, keys ...string) (map[string][]byte, error) {
	data, ok := in.Generated[name]
	if !ok {
		return nil, fmt.Errorf("generated Secret %s has no values: engine.Prepare must fill it before rendering (secrets.Fill)", name)
	}
	for _, k := range keys {
		if len(data[k]) == 0 {
			return nil, fmt.Errorf("generated Secret %s lacks key %s", name, k)
		}
	}
	return data, nil
}
