// Package version holds the version the operator was built with. The Makefile
// sets it with -ldflags "-X github.com/shopplatform/shop-operator/internal/version.Version=...".
package version

// Version of the operator; it is also the default tag of the service images.
var Version = "0.1.0"

// ServicesImage is the default repository of the commerce services image.
const ServicesImage = "ghcr.io/shopplatform/shopd"
