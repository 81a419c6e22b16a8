// Package apidocs writes the Shop API reference (docs/api-reference.md) from
// the generated CRD's OpenAPI schema, so the reference says exactly what the
// API server validates: every field, its type, default, limits and the CEL
// rules with their messages. TestReferenceIsCurrent fails when it is stale.
package apidocs

import (
	"fmt"
	"sort"
	"strings"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"
)

// Generate renders the reference of the CRD in crdYAML as Markdown.
func Generate(crdYAML []byte) ([]byte, error) {
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := yaml.Unmarshal(crdYAML, crd); err != nil {
		return nil, err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# %s API reference\n\n", crd.Spec.Names.Kind)
	b.WriteString("Generated from `config/crd/bases` by `go test ./internal/apidocs -update`. Do not edit.\n\n")
	for _, v := range crd.Spec.Versions {
		fmt.Fprintf(&b, "## %s/%s %s\n\n", crd.Spec.Group, v.Name, crd.Spec.Names.Kind)
		root := v.Schema.OpenAPIV3Schema
		rules(&b, root)
		for _, top := range []string{"spec", "status"} {
			p, ok := root.Properties[top]
			if !ok {
				continue
			}
			fmt.Fprintf(&b, "### %s\n\n", top)
			if p.Description != "" {
				fmt.Fprintf(&b, "%s\n\n", oneLine(p.Description))
			}
			rules(&b, &p)
			b.WriteString("| field | type | description |\n| --- | --- | --- |\n")
			fields(&b, top, &p)
			b.WriteString("\n")
		}
	}
	return []byte(b.String()), nil
}

// fields writes one row per field below s, depth first, in name order.
func fields(b *strings.Builder, path string, s *apiextensionsv1.JSONSchemaProps) {
	if s.Type == "array" && s.Items != nil && s.Items.Schema != nil {
		s = s.Items.Schema
		path += "[]"
	}
	names := make([]string, 0, len(s.Properties))
	for n := range s.Properties {
		names = append(names, n)
	}
	sort.Strings(names)
	required := map[string]bool{}
	for _, r := range s.Required {
		required[r] = true
	}
	for _, n := range names {
		p := s.Properties[n]
		full := path + "." + n
		desc := oneLine(p.Description)
		if extra := constraints(&p, required[n]); extra != "" {
			desc = strings.TrimSpace(desc + " " + extra)
		}
		for _, r := range p.XValidations {
			desc += fmt.Sprintf(" Rule: `%s` (%s)", r.Rule, r.Message)
		}
		fmt.Fprintf(b, "| `%s` | %s | %s |\n", full, typeOf(&p), strings.ReplaceAll(desc, "|", "\\|"))
		fields(b, full, &p)
	}
}

func rules(b *strings.Builder, s *apiextensionsv1.JSONSchemaProps) {
	if len(s.XValidations) == 0 {
		return
	}
	b.WriteString("Rules checked by the API server:\n\n")
	for _, r := range s.XValidations {
		fmt.Fprintf(b, "- %s\n", r.Message)
	}
	b.WriteString("\n")
}

func typeOf(s *apiextensionsv1.JSONSchemaProps) string {
	switch {
	case s.XIntOrString:
		return "int or string"
	case s.Type == "array" && s.Items != nil && s.Items.Schema != nil:
		return "[]" + typeOf(s.Items.Schema)
	case s.Type == "object" && s.AdditionalProperties != nil && s.AdditionalProperties.Schema != nil:
		return "map[string]" + typeOf(s.AdditionalProperties.Schema)
	case s.Type == "":
		return "any"
	}
	return s.Type
}

// constraints says what the schema allows beyond the type.
func constraints(s *apiextensionsv1.JSONSchemaProps, required bool) string {
	var out []string
	if required {
		out = append(out, "Required.")
	}
	if s.Default != nil {
		out = append(out, fmt.Sprintf("Default: `%s`.", string(s.Default.Raw)))
	}
	if len(s.Enum) > 0 {
		var vals []string
		for _, e := range s.Enum {
			vals = append(vals, "`"+strings.Trim(string(e.Raw), `"`)+"`")
		}
		out = append(out, "One of "+strings.Join(vals, ", ")+".")
	}
	if s.Minimum != nil {
		out = append(out, fmt.Sprintf("Minimum %g.", *s.Minimum))
	}
	if s.Maximum != nil {
		out = append(out, fmt.Sprintf("Maximum %g.", *s.Maximum))
	}
	if s.MaxLength != nil {
		out = append(out, fmt.Sprintf("At most %d characters.", *s.MaxLength))
	}
	if s.MaxItems != nil {
		out = append(out, fmt.Sprintf("At most %d items.", *s.MaxItems))
	}
	if s.Pattern != "" {
		out = append(out, "Pattern `"+s.Pattern+"`.")
	}
	return strings.Join(out, " ")
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
