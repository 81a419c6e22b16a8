package platform

import (
	"context"
	"log/slog"
)

// AuditFields are the fields of every audit record, in every service, besides
// "audit": true. trace_id is added by the log handler SetupTelemetry installs,
// from the request's span in ctx.
var AuditFields = []string{"actor", "action", "target", "outcome", "trace_id"}

// Audit logs one security event as an audit record: who (actor) did what
// (action) to what (target) with which outcome, plus extra key-value pairs.
// Never pass passwords, tokens or card numbers.
func Audit(ctx context.Context, actor, action, target, outcome string, extra ...any) {
	args := append([]any{"audit", true, "actor", actor, "action", action, "target", target, "outcome", outcome}, extra...)
	slog.InfoContext(ctx, "audit "+action, args...)
}
