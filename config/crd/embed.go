// Package crd embeds the generated CustomResourceDefinitions, so that tools
// (shopctl, kubectl-shop) validate against exactly what the API server serves.
package crd

import _ "embed"

// Shop is the generated Shop CRD (make manifests).
//
//go:embed bases/commerce.shopplatform.io_shops.yaml
var Shop []byte
