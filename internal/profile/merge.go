package profile

import (
	"reflect"
)

// apiPkg is the package whose structs are merged field by field; every other
// type (maps, slices, quantities, durations, Kubernetes types) is a leaf that
// the user's value replaces whole.
var apiPkg = reflect.TypeFor[shopSpec]().PkgPath()

// overlay writes every value the user set in src over dst. A value counts as
// set when it is not the zero value of its type: a nil pointer, an empty
// string or a nil map means "use the default".
func overlay(dst, src reflect.Value) {
	switch {
	case src.Kind() == reflect.Struct && src.Type().PkgPath() == apiPkg:
		for i := range src.NumField() {
			overlay(dst.Field(i), src.Field(i))
		}
	case src.Kind() == reflect.Pointer && !src.IsNil() &&
		src.Elem().Kind() == reflect.Struct && src.Elem().Type().PkgPath() == apiPkg:
		if dst.IsNil() {
			dst.Set(reflect.New(src.Elem().Type()))
		}
		overlay(dst.Elem(), src.Elem())
	case !src.IsZero():
		dst.Set(src)
	}
}
