// Package argocd embeds the Argo CD integration files, so that Go code and
// tests use exactly the script that users paste into argocd-cm.
package argocd

import _ "embed"

// HealthLua is the Lua health check for Shop
// (resource.customizations.health.commerce.shopplatform.io_Shop).
//
//go:embed health.lua
var HealthLua string
