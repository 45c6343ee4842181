package gateway

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the gateway's Prometheus collectors. Labels carry route
// names and fixed values only: nothing a client sends.
type metrics struct {
	requests      *prometheus.CounterVec   // route, method, code
	decisions     *prometheus.CounterVec   // route, kind, decision
	toolLatency   *prometheus.HistogramVec // route
	sessions      *prometheus.GaugeVec     // route
	refused       *prometheus.CounterVec   // route, reason
	upstreamErrs  *prometheus.CounterVec   // route, kind
	sessionsEnded *prometheus.CounterVec   // route, reason

	auditRefused     *prometheus.CounterVec // route, reason
	auditWriteErrors prometheus.Counter
	auditLost        prometheus.Counter
	auditQueued      prometheus.Gauge
}

func newMetrics() *metrics {
	return &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_gateway_requests_total",
			Help: "HTTP requests to gateway routes by route, method and status code.",
		}, []string{"route", "method", "code"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_gateway_decisions_total",
			Help: "Policy decisions by route, kind (tool, resource, prompt) and decision (allowed, step_up, denied).",
		}, []string{"route", "kind", "decision"}),
		toolLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gatehouse_gateway_tool_call_duration_seconds",
			Help:    "Time from forwarding a tools/call to the upstream's response, by route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"route"}),
		sessions: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gatehouse_gateway_sessions",
			Help: "Open MCP sessions by route (for stdio upstreams: live processes).",
		}, []string{"route"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_gateway_sessions_refused_total",
			Help: "New sessions refused by route and reason (limit, draining, start_failed).",
		}, []string{"route", "reason"}),
		upstreamErrs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_gateway_upstream_errors_total",
			Help: "Upstream failures by route and kind (unavailable, timeout, status, exited, invalid_json, too_large, unfilterable, credentials).",
		}, []string{"route", "kind"}),
		sessionsEnded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_gateway_sessions_ended_total",
			Help: "Ended MCP sessions by route and reason (deleted, idle, exited, failed, shutdown, lost).",
		}, []string{"route", "reason"}),
		auditRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_gateway_audit_refused_total",
			Help: "Tool calls refused, not forwarded, because their audit record could not be written, by route and reason (queue_full, timeout, store_error, closed).",
		}, []string{"route", "reason"}),
		auditWriteErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_gateway_audit_write_errors_total",
			Help: "Audit log transactions that failed.",
		}),
		auditLost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_gateway_audit_lost_total",
			Help: "Audit events not written by shutdown: outcomes (gateway.tool_result), and records (gateway.tool_call) of calls forwarded as their commit failed and retried until then.",
		}),
		auditQueued: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gatehouse_gateway_audit_queued",
			Help: "Audit events waiting to be written.",
		}),
	}
}

// collectors lists the collectors to register.
func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.requests, m.decisions, m.toolLatency, m.sessions, m.refused, m.upstreamErrs, m.sessionsEnded,
		m.auditRefused, m.auditWriteErrors, m.auditLost, m.auditQueued}
}
