package dashboards

import (
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/logs"
	"github.com/grafana/grafana-foundation-sdk/go/loki"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"

	"github.com/shopplatform/shop-operator/internal/render"
)

// Datasource variables: every panel refers to its datasource through them,
// so one dashboard works with whatever UIDs a Grafana has.
const (
	VarPrometheus = "prometheus"
	VarLoki       = "loki"
	VarJaeger     = "jaeger"
)

// builder holds what every query of a Shop's dashboards shares.
type builder struct {
	in  render.Input
	sel string // matches the Shop's series
}

func newBuilder(in render.Input) *builder {
	return &builder{in: in, sel: fmt.Sprintf(`namespace=%q, shop=%q`, in.Shop.Namespace, in.Shop.Name)}
}

// s returns a selector of the Shop's series plus extra matchers.
func (b *builder) s(extra string) string {
	if extra == "" {
		return "{" + b.sel + "}"
	}
	return "{" + b.sel + ", " + extra + "}"
}

func (b *builder) dashboard(id string, build func(*builder) *dashboard.DashboardBuilder) *dashboard.DashboardBuilder {
	return build(b).
		Uid(UID(b.in, id)).
		Tags([]string{"shop", b.in.Shop.Name, string(b.in.Spec.Environment)}).
		Refresh("30s").
		Time("now-3h", "now").
		Timezone(common.TimeZoneBrowser).
		Tooltip(dashboard.DashboardCursorSyncCrosshair).
		Readonly().
		WithVariable(datasourceVariable(VarPrometheus, "prometheus", "Prometheus")).
		Link(dashboard.NewDashboardLinkBuilder("Shop dashboards").Type(dashboard.DashboardLinkTypeDashboards).
			Tags([]string{"shop", b.in.Shop.Name}).AsDropdown(true).IncludeVars(true).KeepTime(true))
}

func (b *builder) title(name string) string {
	return fmt.Sprintf("Shop %s/%s · %s", b.in.Shop.Namespace, b.in.Shop.Name, name)
}

func datasourceVariable(name, pluginType, label string) *dashboard.DatasourceVariableBuilder {
	return dashboard.NewDatasourceVariableBuilder(name).Type(pluginType).Label(label)
}

func ds(pluginType, variable string) common.DataSourceRef {
	return common.DataSourceRef{Type: cog.ToPtr(pluginType), Uid: cog.ToPtr("${" + variable + "}")}
}

// q is a PromQL query with its legend.
type q struct{ expr, legend string }

func promTargets(qs []q, exemplars bool) []cog.Builder[variants.Dataquery] {
	var out []cog.Builder[variants.Dataquery]
	for i, x := range qs {
		p := prometheus.NewDataqueryBuilder().
			Datasource(ds("prometheus", VarPrometheus)).
			RefId(string(rune('A' + i))).
			Expr(x.expr).
			LegendFormat(x.legend).
			Range()
		if exemplars {
			p = p.Exemplar(true)
		}
		out = append(out, p)
	}
	return out
}

// graph is a time series panel of PromQL queries.
func graph(title, unit string, qs ...q) *timeseries.PanelBuilder {
	return timeseries.NewPanelBuilder().
		Title(title).Unit(unit).Height(8).Span(12).
		Datasource(ds("prometheus", VarPrometheus)).
		Targets(promTargets(qs, false)).
		FillOpacity(10).
		Legend(common.NewVizLegendOptionsBuilder().DisplayMode(common.LegendDisplayModeList).Placement(common.LegendPlacementBottom).ShowLegend(true))
}

// latency is a time series panel with exemplars: a point links to its trace in Jaeger.
func latency(title string, qs ...q) *timeseries.PanelBuilder {
	return graph(title, "s", qs...).Targets(promTargets(qs, true))
}

// single is a stat panel of one PromQL query.
func single(title, unit string, x q) *stat.PanelBuilder {
	return stat.NewPanelBuilder().
		Title(title).Unit(unit).Height(4).Span(6).
		Datasource(ds("prometheus", VarPrometheus)).
		Targets(promTargets([]q{x}, false))
}

// logPanel is a Loki logs panel.
func logPanel(title, expr string) *logs.PanelBuilder {
	return logs.NewPanelBuilder().
		Title(title).Height(12).Span(24).
		Datasource(ds("loki", VarLoki)).
		WithTarget(loki.NewDataqueryBuilder().Datasource(ds("loki", VarLoki)).RefId("A").Expr(expr)).
		ShowTime(true).WrapLogMessage(true).EnableLogDetails(true).
		SortOrder(common.LogsSortOrderDescending)
}
