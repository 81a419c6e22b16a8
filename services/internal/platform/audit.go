package platform

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
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

// RequireAudited is v.Require(next, roles...), and a request it refuses is
// also an audit record: action token_refused, the route as target, outcome
// refused with the problem's code as reason (missing_token, invalid_token,
// token_expired, forbidden, ...); the actor is the token's subject when the
// token is valid but its role may not, else anonymous.
func RequireAudited(v *Verifier, next http.HandlerFunc, roles ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		admitted := false
		v.Require(func(w http.ResponseWriter, r *http.Request) {
			admitted = true
			next(w, r)
		}, roles...)(w, r)
		if admitted {
			return
		}
		actor, reason := "anonymous", ErrNoToken.Code
		if raw := BearerToken(r); raw != "" {
			c, err := v.VerifyToken(r.Context(), raw)
			var p *Problem
			switch {
			case err == nil:
				actor, reason = c.Subject, ErrForbidden.Code
			case errors.As(err, &p):
				reason = p.Code
			default:
				reason = "invalid_token"
			}
		}
		Audit(r.Context(), actor, "token_refused", r.Method+" "+r.URL.Path, "refused", "reason", reason)
	}
}
