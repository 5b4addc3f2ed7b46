package server

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/redirectd/redirectd/decision"
)

// redirectStatuses are the status codes a decision can carry; the decision
// counters for them are resolved once so the hot path does no label lookup.
var redirectStatuses = [...]int{301, 302, 303, 307, 308}

// Metrics is redirectd's Prometheus instrumentation, on its own registry so
// that tests and embedders never collide on the global default one.
type Metrics struct {
	registry *prometheus.Registry

	decisions        *prometheus.CounterVec
	redirectByStatus [len(redirectStatuses)]prometheus.Counter
	passes           prometheus.Counter
	errors           prometheus.Counter
	selfRedirects    prometheus.Counter
	duration         prometheus.Histogram

	rulesLoaded  *prometheus.GaugeVec
	reloads      *prometheus.CounterVec
	dropRefused  prometheus.Counter
	version      prometheus.Gauge
	lastReload   prometheus.Gauge
	ruleWarnings prometheus.Gauge
	unparsable   *prometheus.CounterVec
	shadows      *shadowCounters
}

// maxShadowSeries bounds redirectd_shadow_decisions_total's rule_id label,
// as every other per-rule record is bounded whatever the rule set (Hits,
// the console's per-minute counts): shadow rules are trials, a handful at
// a time, and a label value per rule of a million-rule set would swamp
// Prometheus. Rules past the bound share rule_id="_other".
const maxShadowSeries = 100

// shadowOther is the rule_id of the shadow rules past maxShadowSeries.
const shadowOther = "_other"

// shadowCounters holds one counter per shadow rule that would have
// answered (README "Shadow rules"). A series is deleted when its rule is
// no longer a shadow rule of the serving set (prune), which frees its
// place.
type shadowCounters struct {
	vec   *prometheus.CounterVec
	other prometheus.Counter // rule_id="_other"
	mu    sync.RWMutex
	byID  map[string]prometheus.Counter
}

func (s *shadowCounters) inc(id string) {
	s.mu.RLock()
	c, full := s.byID[id], len(s.byID) >= maxShadowSeries
	s.mu.RUnlock()
	switch {
	case c == nil && full:
		// Past the bound every decision lands here: no exclusive lock.
		c = s.other
	case c == nil:
		s.mu.Lock()
		if c = s.byID[id]; c == nil {
			if len(s.byID) < maxShadowSeries {
				// A copy: id points into the rule set's string arena,
				// which the series would keep alive after a replace.
				id = strings.Clone(id)
				c = s.vec.WithLabelValues(id)
				s.byID[id] = c
			} else {
				c = s.other
			}
		}
		s.mu.Unlock()
	}
	c.Inc()
}

// prune deletes the series of rules that are no longer shadow rules of
// ix: O(maxShadowSeries) lookups, whatever the size of the set.
func (s *shadowCounters) prune(ix *decision.Index) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id := range s.byID {
		if r, ok := ix.Rule(id); !ok || r.Mode != decision.ModeShadow {
			s.vec.DeleteLabelValues(id)
			delete(s.byID, id)
		}
	}
}

// NewMetrics registers every redirectd metric, plus the Go runtime and
// process collectors, on a new registry.
func NewMetrics() *Metrics {
	m := &Metrics{registry: prometheus.NewRegistry()}
	m.decisions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "redirectd_decisions_total",
		Help: `Decisions answered, by result (redirect, pass, error) and status code ("none" unless a redirect).`,
	}, []string{"result", "status"})
	for i, s := range redirectStatuses {
		m.redirectByStatus[i] = m.decisions.WithLabelValues("redirect", strconv.Itoa(s))
	}
	m.passes = m.decisions.WithLabelValues("pass", "none")
	m.errors = m.decisions.WithLabelValues("error", "none")
	m.selfRedirects = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "redirectd_self_redirects_total",
		Help: "Decisions in which a rule's Location was the request's own URL, so it was not answered (README \"Redirect loops\"): a loop in the rules that the load check could not see.",
	})
	m.duration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "redirectd_decision_duration_seconds",
		Help: "Time the engine took to decide one request (in-process, without transport).",
		// A decision takes microseconds; the buckets resolve that range and
		// still show a pathological regex or a GC pause.
		Buckets: []float64{1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 1e-2, 0.1},
	})
	m.rulesLoaded = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "redirectd_rules_loaded",
		Help: "Rules in the serving rule set, by match kind.",
	}, []string{"kind"})
	m.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "redirectd_reloads_total",
		Help: `Attempts to apply a rule set (file reload or admin write), by result (ok, error).`,
	}, []string{"result"})
	m.dropRefused = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "redirectd_reload_max_drop_refusals_total",
		Help: "Reloads refused because they would remove more of the serving rules than --reload-max-drop (also counted as reloads_total{result=\"error\"}).",
	})
	m.version = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "redirectd_rules_version",
		Help: "Version number of the serving rule set; it grows with every applied set.",
	})
	m.lastReload = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "redirectd_last_reload_timestamp_seconds",
		Help: "Unix time at which the serving rule set was applied.",
	})
	m.ruleWarnings = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "redirectd_rules_warnings",
		Help: "Warnings (chains, shadowed rules) in the serving rule set.",
	})
	m.unparsable = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "redirectd_unparsable_requests_total",
		Help: "Edge-proxy requests that could not be read and were passed on unchanged, by adapter (envoy, forward_auth).",
	}, []string{"adapter"})
	shadows := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "redirectd_shadow_decisions_total",
		Help: fmt.Sprintf(`Decisions a shadow rule (mode: shadow) would have made, by rule; the request was decided as if the rule were absent. At most %d rule ids, the rest counted as rule_id=%q.`, maxShadowSeries, shadowOther),
	}, []string{"rule_id"})
	m.shadows = &shadowCounters{byID: map[string]prometheus.Counter{}, vec: shadows, other: shadows.WithLabelValues(shadowOther)}
	// Pre-create the label sets a dashboard expects to see at zero.
	for _, r := range []string{"ok", "error"} {
		m.reloads.WithLabelValues(r)
	}
	for _, a := range []string{"envoy", "forward_auth"} {
		m.unparsable.WithLabelValues(a)
	}
	for _, k := range []decision.MatchKind{decision.MatchExact, decision.MatchPrefix, decision.MatchPattern, decision.MatchRegex} {
		m.rulesLoaded.WithLabelValues(k.String())
	}
	m.registry.MustRegister(m.decisions, m.selfRedirects, m.duration, m.rulesLoaded, m.reloads, m.dropRefused,
		m.version, m.lastReload, m.ruleWarnings, m.unparsable, m.shadows.vec,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{Registry: m.registry})
}

// observeDecision counts one decision; it is on the hot path, so it only
// touches pre-resolved counters.
func (m *Metrics) observeDecision(d *decision.Decision, err error, took time.Duration) {
	m.duration.Observe(took.Seconds())
	if d.SelfRedirect {
		m.selfRedirects.Inc()
	}
	switch {
	case err != nil:
		m.errors.Inc()
	case !d.Redirect:
		m.passes.Inc()
	default:
		for i, s := range redirectStatuses {
			if s == d.Status {
				m.redirectByStatus[i].Inc()
				return
			}
		}
		// Build rejects other statuses; count one anyway rather than lose it.
		m.decisions.WithLabelValues("redirect", strconv.Itoa(d.Status)).Inc()
	}
}

// observeApplied records a successfully applied rule set.
func (m *Metrics) observeApplied(s *Snapshot) {
	m.reloads.WithLabelValues("ok").Inc()
	m.version.Set(float64(s.Version.Number))
	m.lastReload.Set(float64(s.LoadedAt.UnixNano()) / 1e9)
	m.ruleWarnings.Set(float64(len(s.Warnings)))
	for _, k := range []decision.MatchKind{decision.MatchExact, decision.MatchPrefix, decision.MatchPattern, decision.MatchRegex} {
		m.rulesLoaded.WithLabelValues(k.String()).Set(float64(s.Index.Count(k)))
	}
	m.shadows.prune(s.Index)
}

// observeDropRefused records a reload refused by --reload-max-drop.
func (m *Metrics) observeDropRefused() { m.dropRefused.Inc() }

// observeRejected records a rule set that was not applied.
func (m *Metrics) observeRejected() { m.reloads.WithLabelValues("error").Inc() }

// PassedUnparsable counts an edge-proxy request that could not be read and
// was passed on (README "Envoy": never blocked, always counted).
// adapter is "envoy" or "forward_auth".
func (m *Metrics) PassedUnparsable(adapter string) {
	m.unparsable.WithLabelValues(adapter).Inc()
}

// DecisionObserver is told of every decision by the Engine
// (Engine.SetObserver): it counts it, credits the rule that made it and
// logs a sample. Each part is optional.
type DecisionObserver struct {
	Metrics *Metrics
	Hits    *Hits
	Log     *slog.Logger
	// LogSample is the fraction of decisions logged (0 = none, 1 = all):
	// enough to see traffic without a log line per request.
	LogSample float64

	shadowLog logBudget
}

// shadowLogPerSecond bounds the shadow decision log: a shadow rule tried
// on a busy path would otherwise log a line per request. The metric and
// the hit statistics count every shadow decision.
const shadowLogPerSecond = 100

// Observe is the Engine's observe hook.
func (o *DecisionObserver) Observe(req *decision.Request, d *decision.Decision, err error, at time.Time, took time.Duration) {
	if o.Metrics != nil {
		o.Metrics.observeDecision(d, err, took)
	}
	if o.Hits != nil && err == nil && d.Redirect {
		o.Hits.hit(d.RuleID, at)
	}
	for i := range d.Shadows {
		o.observeShadow(req, d, &d.Shadows[i], at)
	}
	if o.LogSample > 0 && o.Log != nil && rand.Float64() < o.LogSample {
		attrs := []any{"method", req.Method, "host", req.Host, "target", req.Target,
			"redirect", d.Redirect, "took", took}
		if d.Redirect {
			attrs = append(attrs, "rule", d.RuleID, "status", d.Status, "location", d.Location)
		}
		if err != nil {
			attrs = append(attrs, "error", err.Error())
		}
		o.Log.Info("decision", attrs...)
	}
}

// observeShadow counts and logs the answer a shadow rule would have given
// (README "Shadow rules"), beside the decision that was made.
func (o *DecisionObserver) observeShadow(req *decision.Request, d *decision.Decision, sh *decision.ShadowAnswer, at time.Time) {
	if o.Metrics != nil {
		o.Metrics.shadows.inc(sh.RuleID)
	}
	if o.Hits != nil {
		o.Hits.hit(sh.RuleID, at)
	}
	if o.Log == nil || !o.shadowLog.take(at) {
		return
	}
	decided := "pass"
	if d.Redirect {
		decided = fmt.Sprintf("%d %s by %s", d.Status, d.Location, d.RuleID)
	}
	o.Log.Info("shadow decision", "rule", sh.RuleID, "method", req.Method, "host", req.Host, "target", req.Target,
		"status", sh.Status, "location", sh.Location, "cache_control", sh.Cache.CacheControl, "decided", decided)
}

// logBudget allows n log lines a second (approximately: two decisions in
// a new second may both reset it).
type logBudget struct {
	second, used atomic.Int64
}

func (b *logBudget) take(at time.Time) bool {
	if s := at.Unix(); b.second.Load() != s {
		b.second.Store(s)
		b.used.Store(0)
	}
	return b.used.Add(1) <= shadowLogPerSecond
}
