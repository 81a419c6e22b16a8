package backups

import (
	"fmt"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus/common/model"
	"github.com/robfig/cron/v3"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/render"
)

// AlertBackupMissing fires when a database had no successful backup in two
// schedule periods. Runbook: docs/runbooks/ShopBackupMissing.md.
const AlertBackupMissing = "ShopBackupMissing"

// AlertBackupUploadFailing fires when the dumps succeed but the backup Jobs
// (dump, then upload to the bucket) do not: the off-site copies fall behind.
// Runbook: docs/runbooks/ShopBackupUploadFailing.md.
const AlertBackupUploadFailing = "ShopBackupUploadFailing"

// runbookBaseURL matches the monitoring builder's runbook links.
const runbookBaseURL = "https://github.com/shopplatform/shop-operator/blob/main/docs/runbooks/"

// KubeCronJobCreated is kube-state-metrics' creation time of a CronJob: the
// alert waits two periods after the CronJob appeared before it may fire.
const KubeCronJobCreated = "kube_cronjob_created"

// KubeCronJobLastSuccessful is kube-state-metrics' completion time of the
// CronJob's last successful Job (absent until one succeeds).
const KubeCronJobLastSuccessful = "kube_cronjob_status_last_successful_time"

// alertFor is how long the alert condition must hold: slack for a backup
// that is still running when its window closes.
const alertFor = "15m"

type scheduledDB struct {
	svc    string
	period time.Duration
	upload bool // the Jobs also upload to a bucket
}

// Period is the longest gap between two consecutive runs of a cron schedule
// (so "0 3 * * 1-5" has a period of three days), over a year of runs from a
// fixed date: the result depends on the schedule only.
func Period(schedule string) (time.Duration, error) {
	s, err := cron.ParseStandard(schedule)
	if err != nil {
		return 0, err
	}
	from := time.Date(2026, time.January, 1, 0, 0, 0, 0, time.UTC)
	end := from.AddDate(1, 0, 0)
	var longest time.Duration
	prev := s.Next(from)
	for i := 0; i < 600_000 && prev.Before(end); i++ { // bounded: a run per minute for a year
		next := s.Next(prev)
		if next.IsZero() {
			break
		}
		longest = max(longest, next.Sub(prev))
		prev = next
	}
	if longest == 0 {
		return 0, fmt.Errorf("schedule %q never runs twice", schedule)
	}
	return longest, nil
}

// prometheusRule renders <shop>-backups when rules are on and the backups'
// metrics can reach Prometheus (a collector scraped by a ServiceMonitor):
// without them the alert would always fire.
func prometheusRule(in render.Input, dbs []scheduledDB) *monitoringv1.PrometheusRule {
	prom := in.Spec.Observability.Prometheus
	if len(dbs) == 0 || !in.APIs.PrometheusOperator || !ptr.Deref(prom.Rules, false) ||
		!ptr.Deref(prom.ServiceMonitors, false) || MetricsURL(in) == "" {
		return nil
	}
	var rules []monitoringv1.Rule
	for _, db := range dbs {
		rules = append(rules, missingAlert(in, db))
		if db.upload {
			rules = append(rules, uploadFailingAlert(in, db))
		}
	}
	meta := in.ObjectMeta(in.Name("backups"), "backups")
	meta.Labels = render.WithLabels(meta.Labels, prom.SelectorLabels)
	return &monitoringv1.PrometheusRule{
		ObjectMeta: meta,
		Spec: monitoringv1.PrometheusRuleSpec{Groups: []monitoringv1.RuleGroup{
			{Name: in.Shop.Name + ".backups", Rules: rules},
		}},
	}
}

// missingAlert: the collector forgets a pushed gauge after a few minutes, so
// "a success within two periods" is "the success metric was seen within two
// periods". The second operand holds the alert back until the CronJob has
// existed that long.
func missingAlert(in render.Input, db scheduledDB) monitoringv1.Rule {
	window := model.Duration(2 * db.period).String()
	expr := fmt.Sprintf(`absent_over_time(%s{namespace=%q, shop=%q, database=%q}[%s])
and on (namespace)
(time() - max by (namespace) (%s{namespace=%q, cronjob=%q}) > %d)`,
		MetricLastSuccess, in.Shop.Namespace, in.Shop.Name, db.svc, window,
		KubeCronJobCreated, in.Shop.Namespace, CronJobName(in, db.svc), int64((2 * db.period).Seconds()))
	return monitoringv1.Rule{
		Alert: AlertBackupMissing,
		Expr:  intstr.FromString(expr),
		For:   ptr.To(monitoringv1.Duration(alertFor)),
		Labels: map[string]string{
			"severity": severity(in),
			"shop":     in.Shop.Name,
			"service":  db.svc,
		},
		Annotations: map[string]string{
			"summary": "No successful backup of the " + db.svc + " database in " + window,
			"description": fmt.Sprintf("CronJob %s runs at least every %s but has not reported a successful pg_dump of database %s of shop %s for %s.",
				CronJobName(in, db.svc), model.Duration(db.period), db.svc, in.Shop.Name, window),
			"runbook_url": runbookBaseURL + AlertBackupMissing + ".md",
		},
	}
}

// uploadFailingAlert: a dump was reported within two periods (so
// ShopBackupMissing is quiet), yet no Job of the CronJob completed in that
// time (kube-state-metrics), once the CronJob is that old. A Job completes
// only when the upload after the dump succeeds, so this is the upload.
func uploadFailingAlert(in render.Input, db scheduledDB) monitoringv1.Rule {
	window := model.Duration(2 * db.period).String()
	seconds := int64((2 * db.period).Seconds())
	cronJob := CronJobName(in, db.svc)
	expr := fmt.Sprintf(`max by (namespace) (max_over_time(%s{namespace=%q, shop=%q, database=%q}[%s]))
and on (namespace)
(time() - max by (namespace) (%s{namespace=%q, cronjob=%q}) > %d)
unless on (namespace)
(time() - max by (namespace) (%s{namespace=%q, cronjob=%q}) <= %d)`,
		MetricLastSuccess, in.Shop.Namespace, in.Shop.Name, db.svc, window,
		KubeCronJobCreated, in.Shop.Namespace, cronJob, seconds,
		KubeCronJobLastSuccessful, in.Shop.Namespace, cronJob, seconds)
	return monitoringv1.Rule{
		Alert: AlertBackupUploadFailing,
		Expr:  intstr.FromString(expr),
		For:   ptr.To(monitoringv1.Duration(alertFor)),
		Labels: map[string]string{
			"severity": "warning", // the dumps on the volume are current; the off-site copies are not
			"shop":     in.Shop.Name,
			"service":  db.svc,
			"database": db.svc,
		},
		Annotations: map[string]string{
			"summary": "Backups of the " + db.svc + " database are not reaching the bucket",
			"description": fmt.Sprintf("pg_dump of database %s of shop %s succeeds, but no Job of CronJob %s completed in %s: the upload to the S3 bucket fails.",
				db.svc, in.Shop.Name, cronJob, window),
			"runbook_url": runbookBaseURL + AlertBackupUploadFailing + ".md",
		},
	}
}

// severity: a production database without backups pages; elsewhere it warns.
func severity(in render.Input) string {
	if in.Spec.Environment == shopv1.Production {
		return "critical"
	}
	return "warning"
}
