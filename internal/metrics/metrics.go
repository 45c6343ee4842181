// Package metrics holds Gatehouse's Prometheus metrics and the handler
// middleware that records them. Metrics are served on the separate admin
// listener, never on the public one.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is a registry with Gatehouse's collectors.
type Metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	grants   *prometheus.CounterVec
	now      func() time.Time
}

// New returns fresh metrics. now is the clock used for latencies.
func New(now func() time.Time) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_http_requests_total",
			Help: "HTTP requests by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gatehouse_http_request_duration_seconds",
			Help:    "HTTP request latency by route pattern.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route"}),
		grants: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_token_requests_total",
			Help: "Token endpoint requests by grant type and outcome (success or the OAuth error code).",
		}, []string{"grant_type", "outcome"}),
		now: now,
	}
	m.reg.MustRegister(m.requests, m.latency, m.grants,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Registerer lets other components (the gateway) register their own
// collectors, served on the same admin /metrics.
func (m *Metrics) Registerer() prometheus.Registerer { return m.reg }

// Grant counts one token request.
func (m *Metrics) Grant(grantType, outcome string) {
	m.grants.WithLabelValues(grantType, outcome).Inc()
}

// Middleware records requests and latency per route. The route label is
// the ServeMux pattern that matched and the method label one of a fixed
// set, so unknown paths and made-up methods cannot blow up the label set.
func (m *Metrics) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := m.now()
		sw := &StatusWriter{ResponseWriter: w, Code: http.StatusOK}
		next.ServeHTTP(sw, r)
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		m.requests.WithLabelValues(route, MethodLabel(r.Method), strconv.Itoa(sw.Code)).Inc()
		m.latency.WithLabelValues(route).Observe(m.now().Sub(start).Seconds())
	})
}

// MethodLabel is the method label of a request: the standard methods as
// they are, anything else "other". A client chooses the method, so using it
// raw would let anyone add series (and memory) without limit.
func MethodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
		return method
	}
	return "other"
}

// StatusWriter remembers the status code written, for request metrics.
// Start Code at 200: a handler that never calls WriteHeader sends that.
type StatusWriter struct {
	http.ResponseWriter
	Code int
}

// WriteHeader records code and writes it.
func (w *StatusWriter) WriteHeader(code int) {
	w.Code = code
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *StatusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
