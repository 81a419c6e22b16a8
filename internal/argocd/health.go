// Package argocd evaluates the Shop's Argo CD health check the way Argo CD
// does, so that tests (and tools such as kubectl-shop) see the health Argo CD
// would show.
package argocd

import (
	"context"
	"fmt"
	"time"

	lua "github.com/yuin/gopher-lua"

	configargocd "github.com/shopplatform/shop-operator/config/argocd"
)

// HealthKey is the argocd-cm key that holds the Shop's health check.
const HealthKey = "resource.customizations.health.commerce.shopplatform.io_Shop"

// Health statuses Argo CD accepts from a health script.
const (
	Healthy     = "Healthy"
	Progressing = "Progressing"
	Degraded    = "Degraded"
	Suspended   = "Suspended"
	Missing     = "Missing"
	Unknown     = "Unknown"
)

// Health is what the script returns.
type Health struct {
	Status  string
	Message string
}

// ShopHealth runs the embedded health script against a Shop in its
// unstructured (JSON-decoded) form.
func ShopHealth(obj map[string]any) (Health, error) {
	return Evaluate(configargocd.HealthLua, obj)
}

// Evaluate mimics Argo CD's util/lua VM.ExecuteHealthLua: a fresh state with
// only the package, base and table libraries (Argo CD adds a "safe" os with
// time, date and clock, which the script does not use; string, math and io
// are absent), the object as the global `obj`, a one second budget, and a
// returned table whose status must be a known code.
func Evaluate(script string, obj map[string]any) (Health, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
	} {
		l.Push(l.NewFunction(lib.open))
		l.Push(lua.LString(lib.name))
		l.Call(1, 0)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", decodeValue(l, obj))
	if err := l.DoString(script); err != nil {
		return Health{}, err
	}
	ret, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		return Health{}, fmt.Errorf("health script returned %s, want a table", l.Get(-1).Type())
	}
	h := Health{Status: lua.LVAsString(ret.RawGetString("status")), Message: lua.LVAsString(ret.RawGetString("message"))}
	switch h.Status {
	case Healthy, Progressing, Degraded, Suspended, Missing, Unknown:
		return h, nil
	}
	// Argo CD's answer to an unknown code.
	return Health{Status: Unknown, Message: "Lua returned an invalid health status"}, nil
}

// decodeValue converts JSON-decoded values to Lua exactly as Argo CD does:
// anything else (e.g. a Go int) becomes nil, so callers must pass the
// unstructured form (int64, float64), never typed structs.
func decodeValue(l *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case float64:
		return lua.LNumber(v)
	case int64:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case bool:
		return lua.LBool(v)
	case []any:
		arr := l.CreateTable(len(v), 0)
		for _, item := range v {
			arr.Append(decodeValue(l, item))
		}
		return arr
	case map[string]any:
		tbl := l.CreateTable(0, len(v))
		for key, item := range v {
			tbl.RawSetH(lua.LString(key), decodeValue(l, item))
		}
		return tbl
	}
	return lua.LNil
}
