package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/gatehouse-mcp/gatehouse/internal/storage"
)

// The gateway's audit log keeps one rule: every tool call it forwards has
// an audit record (type [AuditToolCall], outcome "allowed") committed
// before or as it is forwarded, and before anything of the upstream's
// answer reaches the client; so does every call it refuses by policy
// (outcome "denied" or "step_up"), before it is answered. When the store
// cannot keep up, calls wait for it or are refused with
// [CodeAuditUnavailable]; a record is never dropped.
//
// "Before or as", precisely. A call's record is first admitted to the
// queue (a full queue refuses the call, which is not forwarded). Then:
//
//   - While the store's last transaction committed, the call is forwarded
//     at once and the writer commits the record meanwhile (auditLog.ahead):
//     the commit, 50–100 µs of SQLite, overlaps the upstream's work instead
//     of adding to every call's latency. The upstream's answer is held
//     until the commit: the response (exchange.settleOrAnswer), and what
//     the upstream sends the call's session meanwhile on any stream, as it
//     may belong to the call (recordHolds). Should the commit fail, the
//     record is kept and retried until written, like an outcome, and the
//     answer is held until then; a call whose record is still unwritten
//     at its request's deadline is answered with [CodeAuditUnavailable]
//     saying that it was forwarded and its response withheld (outcome
//     "withheld"). A record still unwritten at shutdown is counted as lost.
//   - At start, and after any failed transaction until one commits, the
//     store is not known to work: the record is committed before the call
//     is forwarded (auditLog.record), and a call whose record fails is
//     refused, not forwarded. With Options.AuditBeforeForward
//     (audit_before_forward) this is the rule for every call.
//
// So a forwarded call lacks its record only if the store failed while the
// call was in flight and stayed down until shutdown (counted, logged), or
// if the gateway died within the commit's window; with AuditBeforeForward,
// never.
//
// Records are written in batches, one transaction per flush: a record
// waits for the commit of the batch it joins, and records that arrive
// while a commit runs share the next one (group commit, as in the
// authorization server). A call's outcome (type [AuditToolResult]) is
// written after its response, without waiting, with other outcomes:
// auditOutcomeBatch at a time, or after auditOutcomeLinger. The queue is
// bounded (Options.AuditBuffer events, outcomes and records being retried
// included): a call whose record does not fit is refused at once, and one
// whose record must precede it and is not committed before its request's
// deadline is refused then.

// AuditToolResult is the audit event type of the outcome of a forwarded
// tool call, written after the upstream's response (or failure): outcome
// ok, error, tool_error or failed, with the latency. Its detail names the
// same call=… as the call's [AuditToolCall] event.
const AuditToolResult = "gateway.tool_result"

// CodeAuditUnavailable is the JSON-RPC error code of a tool call the
// gateway did not forward because its audit record could not be written.
// It is from the range JSON-RPC 2.0 §5.1 reserves for implementation-
// defined server errors; the HTTP status is 503 with Retry-After.
const CodeAuditUnavailable = -32005

// Timing of the audit log.
const (
	// auditOutcomeBatch is how many outcome events are written together;
	// fewer wait up to auditOutcomeLinger for more.
	auditOutcomeBatch  = 32
	auditOutcomeLinger = 100 * time.Millisecond
	// auditRetryDelay is how long outcomes whose write failed wait before
	// they are tried again, in a transaction of their own.
	auditRetryDelay = time.Second
	// auditWriteTimeout bounds one transaction.
	auditWriteTimeout = 10 * time.Second
	// auditCloseGrace is the least time close waits for the writer's
	// final pass: one transaction's time.
	auditCloseGrace = auditWriteTimeout
	// auditReportEvery is the least time between two summary log lines.
	auditReportEvery = 10 * time.Second
	// auditRetryAfter is the Retry-After of a call refused for its record.
	auditRetryAfter = "1"
)

// Errors of [auditLog.record].
var (
	errAuditFull   = errors.New("the audit queue is full")
	errAuditClosed = errors.New("the gateway is shutting down")
)

// auditUnit is what one caller hands to the log: written in one
// transaction, all or nothing.
type auditUnit struct {
	events []storage.AuditEvent
	// done is closed once the unit is written or given up, err then
	// saying which; nil for an outcome, which nobody waits for. Closed,
	// not sent on: besides the caller, server messages of the call's
	// session may wait for it (recordHolds).
	done  chan struct{}
	err   error
	taken bool // a flush is writing it
	// ahead marks the records of calls forwarded without waiting for
	// their commit: like outcomes, they are retried until written, and
	// done hears only of their commit or, at shutdown, their loss.
	ahead bool
}

// auditLog writes the gateway's audit events; see the comment at the top
// of this file.
type auditLog struct {
	sink    storage.Audit
	limit   int
	metrics *metrics
	log     *slog.Logger
	now     func() time.Time

	wake chan struct{} // buffered 1: something was queued, or close
	done chan struct{} // closed when run has returned

	mu       sync.Mutex
	queue    []*auditUnit // records not yet taken, oldest first: each has a caller waiting
	outcomes []*auditUnit // outcomes not yet taken
	pending  int          // events in outcomes
	retry    []*auditUnit // outcomes whose write failed
	queued   int          // events queued, retried or being written
	// flushing is set while a transaction runs, by the writer or by a
	// caller that found none running; there is one at a time.
	flushing bool
	closing  bool
	stopped  bool // run has returned: nothing more is written
	// proven is set while the last transaction committed: only then are
	// calls forwarded before their records are committed, and not even
	// then with before (Options.AuditBeforeForward).
	proven bool
	before bool

	// The summary log line: what happened since the last one.
	refusedBy  map[string]int // calls refused, by reason
	failures   int            // failed transactions
	lost       int            // outcomes that could not be written by shutdown
	lostAhead  int            // records of forwarded calls, the same
	withheld   int            // responses withheld for want of their record
	cause      error          // the last store error
	reportedAt time.Time
}

func newAuditLog(sink storage.Audit, limit int, before bool, m *metrics, log *slog.Logger, now func() time.Time) *auditLog {
	a := &auditLog{
		sink: sink, limit: limit, before: before, metrics: m, log: log, now: now,
		wake: make(chan struct{}, 1), done: make(chan struct{}),
		refusedBy: map[string]int{},
	}
	go a.run()
	return a
}

// signal wakes the writer.
func (a *auditLog) signal() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// record commits events before it returns, in one transaction with other
// callers' events. It fails without writing anything when the queue is
// full (errAuditFull), when ctx ends before a flush took the events, or
// when their transaction failed: the caller must then not forward what
// the events record. A caller whose events are being written when ctx
// ends waits for that transaction (at most auditWriteTimeout), so that
// an error always means nothing was written.
func (a *auditLog) record(ctx context.Context, events []storage.AuditEvent) error {
	if len(events) == 0 {
		return nil
	}
	u := &auditUnit{events: events, done: make(chan struct{})}
	a.mu.Lock()
	switch {
	case a.closing:
		a.mu.Unlock()
		return errAuditClosed
	case a.queued > 0 && a.queued+len(events) > a.limit:
		// An empty queue takes any unit: a batch larger than the queue
		// is slow, not impossible.
		a.mu.Unlock()
		return errAuditFull
	}
	a.queue = append(a.queue, u)
	a.queued += len(events)
	a.metrics.auditQueued.Set(float64(a.queued))
	if !a.flushing {
		// No transaction is running: this caller writes the queue itself,
		// sparing a lone call two goroutine switches. Whatever arrives
		// meanwhile is the writer's.
		a.flushing = true
		a.mu.Unlock()
		a.flush(flushRecords)
		a.mu.Lock()
		a.flushing = false
		// The writer skipped its turn while this caller wrote, and sleeps
		// without a timer for what it did not see: records queued
		// meanwhile, a full batch of outcomes, a close, and records of
		// forwarded calls that joined this transaction and failed (they
		// wait for the writer's retry, or for its "at once" once a
		// transaction commits again).
		more := len(a.queue) > 0 || a.pending >= auditOutcomeBatch || a.closing || len(a.retry) > 0
		a.mu.Unlock()
		if more {
			a.signal()
		}
		<-u.done
		return u.err
	}
	a.mu.Unlock()
	a.signal()
	select {
	case <-u.done:
		return u.err
	case <-ctx.Done():
	}
	a.mu.Lock()
	if !u.taken {
		a.queue = slices.DeleteFunc(a.queue, func(x *auditUnit) bool { return x == u })
		a.queued -= len(events)
		a.metrics.auditQueued.Set(float64(a.queued))
		a.mu.Unlock()
		return fmt.Errorf("the audit log did not write the call's record in time: %w", ctx.Err())
	}
	a.mu.Unlock()
	<-u.done
	return u.err
}

// ahead admits the records of calls about to be forwarded. While the
// store's last transaction committed, it queues them for the writer and
// returns at once: the caller forwards the calls and must settle the
// unit before anything of the answer reaches the client. Otherwise it is
// record, and returns a nil unit once the records are committed. An
// error means nothing was queued and nothing may be forwarded.
func (a *auditLog) ahead(ctx context.Context, events []storage.AuditEvent) (*auditUnit, error) {
	if len(events) == 0 {
		return nil, nil
	}
	a.mu.Lock()
	if !a.proven || a.closing || a.before {
		a.mu.Unlock()
		return nil, a.record(ctx, events)
	}
	if a.queued > 0 && a.queued+len(events) > a.limit {
		a.mu.Unlock()
		return nil, errAuditFull
	}
	u := &auditUnit{events: events, done: make(chan struct{}), ahead: true}
	a.queue = append(a.queue, u)
	a.queued += len(events)
	a.metrics.auditQueued.Set(float64(a.queued))
	a.mu.Unlock()
	a.signal()
	return u, nil
}

// settle waits for the commit of a unit from ahead, until ctx ends. An
// error means the records are not written yet (they stay queued, and are
// retried until written), or were lost at shutdown.
func (a *auditLog) settle(ctx context.Context, u *auditUnit) error {
	select {
	case <-u.done:
		return u.err
	default:
	}
	select {
	case <-u.done:
		return u.err
	case <-ctx.Done():
	}
	select {
	case <-u.done: // committed as ctx ended
		return u.err
	default:
		return fmt.Errorf("the audit log did not write the call's record in time: %w", ctx.Err())
	}
}

// recordHolds are the records of a session's calls forwarded before
// their commit (ahead) and not yet written. An upstream answers a call
// not only with its response, which the call's own exchange holds until
// settle, but also with what it sends the session meanwhile —
// notifications (progress, log messages), requests to the client — which
// the gateway passes on by other ways: a stdio process's messages go to
// the session's GET stream or another request's event stream, an HTTP
// upstream's to its own GET stream. Those wait (wait) until every record
// of the session's calls forwarded before them is written: nothing of a
// call's answer reaches the client first. Normally that is the commit's
// sub-millisecond; while the store fails, the session's server messages
// wait with the calls' responses, until the records are written (or given
// up at shutdown).
type recordHolds struct {
	mu    sync.Mutex
	units []*auditUnit
}

// add holds the session's server messages until u is written; nil (a
// record written before its call was forwarded) holds nothing. Call it
// before the call is forwarded.
func (h *recordHolds) add(u *auditUnit) {
	if u == nil {
		return
	}
	h.mu.Lock()
	// A session that gets no server message never waits: what is
	// written is forgotten here too.
	h.prune()
	h.units = append(h.units, u)
	h.mu.Unlock()
}

// prune forgets the records written or given up; the caller holds h.mu.
func (h *recordHolds) prune() {
	h.units = slices.DeleteFunc(h.units, func(u *auditUnit) bool {
		select {
		case <-u.done:
			return true
		default:
			return false
		}
	})
}

// wait waits until every record held now is written or given up, or
// until stop is closed (false).
func (h *recordHolds) wait(stop <-chan struct{}) bool {
	h.mu.Lock()
	if len(h.units) == 0 {
		h.mu.Unlock()
		return true
	}
	h.prune()
	units := slices.Clone(h.units)
	h.mu.Unlock()
	for _, u := range units {
		select {
		case <-u.done:
		case <-stop:
			return false
		}
	}
	return true
}

// add queues outcome events without waiting for their commit. They are
// never refused: each belongs to a call whose record was admitted, so
// they are bounded by the calls in flight, and they count against the
// queue, slowing the admission of new calls instead.
func (a *auditLog) add(events ...storage.AuditEvent) {
	a.mu.Lock()
	if a.stopped {
		// The gateway was closed while this call was still in flight.
		a.lost += len(events)
		a.metrics.auditLost.Add(float64(len(events)))
		report := a.report(false)
		a.mu.Unlock()
		report()
		return
	}
	a.outcomes = append(a.outcomes, &auditUnit{events: events})
	a.queued += len(events)
	a.pending += len(events)
	a.metrics.auditQueued.Set(float64(a.queued))
	// The writer needs waking only to start the linger, and to write a
	// full batch.
	wake := a.pending == len(events) || (a.pending >= auditOutcomeBatch && a.pending-len(events) < auditOutcomeBatch)
	a.mu.Unlock()
	if wake {
		a.signal()
	}
}

// What a flush writes.
const (
	flushRecords  = iota // the records callers wait for
	flushOutcomes        // the outcomes
	flushRetry           // the outcomes whose write failed
	flushFinal           // the same, for the last time
)

// run is the writer: it commits records at once when no caller is doing
// so, outcomes by the batch or after auditOutcomeLinger, failed outcomes
// after auditRetryDelay, and at close everything, until it is written or
// given up.
func (a *auditLog) run() {
	defer close(a.done)
	var linger, retry <-chan time.Time
	for {
		a.mu.Lock()
		records, pending, retries, closing, busy, proven := len(a.queue), a.pending, len(a.retry), a.closing, a.flushing, a.proven
		a.mu.Unlock()
		switch {
		case busy:
			// A caller is writing; it wakes the writer if needed.
		case records > 0:
			a.flushAs(flushRecords)
			continue
		case pending >= auditOutcomeBatch || (closing && pending > 0):
			linger = nil
			a.flushAs(flushOutcomes)
			continue
		case retries > 0 && proven && !closing:
			// The store works again: what failed need not wait (among
			// it, records whose calls hold their responses).
			retry = nil
			a.flushAs(flushRetry)
			continue
		case closing:
			if retries > 0 {
				a.flushAs(flushFinal)
			}
			a.mu.Lock()
			if len(a.queue)+len(a.outcomes) > 0 {
				// Something came in meanwhile.
				a.mu.Unlock()
				continue
			}
			a.stopped = true
			report := a.report(true)
			a.mu.Unlock()
			report()
			return
		}
		if pending > 0 && linger == nil {
			linger = time.After(auditOutcomeLinger)
		}
		if retries > 0 && retry == nil {
			retry = time.After(auditRetryDelay)
		}
		select {
		case <-a.wake:
		case <-linger:
			linger = nil
			a.flushAs(flushOutcomes)
		case <-retry:
			retry = nil
			a.flushAs(flushRetry)
		}
	}
}

// flushAs is flush by the writer, unless a caller is writing: then the
// units stay queued, for the writer's next round.
func (a *auditLog) flushAs(what int) {
	a.mu.Lock()
	if a.flushing {
		a.mu.Unlock()
		return
	}
	a.flushing = true
	a.mu.Unlock()
	a.flush(what)
	a.mu.Lock()
	a.flushing = false
	a.mu.Unlock()
}

// flush writes one list of units in one transaction and answers the
// callers waiting for it; the caller has set a.flushing. Outcomes that
// fail are kept for a retry, unless the flush is final: then they are
// counted as lost.
func (a *auditLog) flush(what int) {
	a.mu.Lock()
	var units []*auditUnit
	switch what {
	case flushRecords:
		units, a.queue = a.queue, nil
	case flushOutcomes:
		units, a.outcomes, a.pending = a.outcomes, nil, 0
	default:
		units, a.retry = a.retry, nil
	}
	n := 0
	for _, u := range units {
		u.taken = true
		n += len(u.events)
	}
	a.mu.Unlock()
	if len(units) == 0 {
		return
	}
	events := make([]storage.AuditEvent, 0, n)
	for _, u := range units {
		events = append(events, u.events...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), auditWriteTimeout)
	err := a.sink.AppendAudits(ctx, events)
	cancel()

	a.mu.Lock()
	a.proven = err == nil
	answered := units[:0:0]
	for _, u := range units {
		kept := u.done == nil || u.ahead // outcomes, records of forwarded calls
		if err != nil && kept && what != flushFinal {
			a.retry = append(a.retry, u)
			continue
		}
		a.queued -= len(u.events)
		switch {
		case err != nil && u.ahead:
			a.lostAhead += len(u.events)
			a.metrics.auditLost.Add(float64(len(u.events)))
		case err != nil && kept:
			a.lost += len(u.events)
			a.metrics.auditLost.Add(float64(len(u.events)))
		}
		if u.done != nil {
			answered = append(answered, u)
		}
	}
	a.metrics.auditQueued.Set(float64(a.queued))
	if err != nil {
		a.failures++
		a.cause = err
		a.metrics.auditWriteErrors.Inc()
	}
	report := a.report(false)
	a.mu.Unlock()
	for _, u := range answered {
		u.err = err
		close(u.done)
	}
	report()
}

// withheldResponses counts responses withheld because their calls'
// records were not written in time, for the summary log line.
func (a *auditLog) withheldResponses(calls int) {
	a.mu.Lock()
	a.withheld += calls
	report := a.report(false)
	a.mu.Unlock()
	report()
}

// refused counts calls refused for their record (reason: queue_full,
// timeout, store_error, closed) on a route, for the metrics and the
// summary log line.
func (a *auditLog) refused(route, reason string, calls int) {
	a.metrics.auditRefused.WithLabelValues(route, reason).Add(float64(calls))
	a.mu.Lock()
	a.refusedBy[reason] += calls
	report := a.report(false)
	a.mu.Unlock()
	report()
}

// report returns the summary log line of what went wrong since the last
// one, at most one per auditReportEvery unless force; the caller holds
// a.mu and calls the result after releasing it. One line per refused call
// would flood the log exactly when the store is in trouble.
func (a *auditLog) report(force bool) func() {
	refused := 0
	for _, n := range a.refusedBy {
		refused += n
	}
	if refused == 0 && a.failures == 0 && a.lost == 0 && a.lostAhead == 0 && a.withheld == 0 {
		return func() {}
	}
	now := a.now()
	if !force && !a.reportedAt.IsZero() && now.Sub(a.reportedAt) < auditReportEvery {
		return func() {}
	}
	attrs := []any{"refused_calls", refused}
	for _, reason := range []string{"queue_full", "timeout", "store_error", "closed"} {
		if n := a.refusedBy[reason]; n > 0 {
			attrs = append(attrs, reason, n)
		}
	}
	if a.withheld > 0 {
		attrs = append(attrs, "withheld_responses", a.withheld)
	}
	if a.lostAhead > 0 {
		attrs = append(attrs, "lost_records", a.lostAhead)
	}
	attrs = append(attrs, "failed_writes", a.failures, "lost_outcomes", a.lost, "queued", a.queued)
	if a.cause != nil {
		attrs = append(attrs, "cause", a.cause.Error())
	}
	if !a.reportedAt.IsZero() {
		attrs = append(attrs, "since", now.Sub(a.reportedAt).Round(time.Second).String())
	}
	msg := "gateway: audit log unavailable: tool calls refused, not forwarded"
	switch {
	case a.lostAhead > 0:
		msg = "gateway: audit records of forwarded tool calls lost"
	case refused > 0:
	case a.lost > 0:
		msg = "gateway: audit outcome events lost"
	case a.withheld > 0:
		msg = "gateway: audit log writes failing; responses of forwarded tool calls withheld"
	default:
		msg = "gateway: audit log writes failing; outcome events are retried"
	}
	a.reportedAt = now
	clear(a.refusedBy)
	a.failures, a.lost, a.lostAhead, a.withheld, a.cause = 0, 0, 0, 0, nil
	return func() { a.log.Warn(msg, attrs...) }
}

// close writes what is queued and stops the writer, waiting until ctx
// ends and for at least auditCloseGrace: a drain that used its ctx up
// (requests in flight past the shutdown timeout) must still leave the
// writer its final pass, in which every record is written or counted as
// lost, before the caller closes the store. Calls that still ask for a
// record afterwards are refused.
func (a *auditLog) close(ctx context.Context) {
	a.mu.Lock()
	a.closing = true
	a.mu.Unlock()
	a.signal()
	grace := time.NewTimer(auditCloseGrace)
	defer grace.Stop()
	select {
	case <-a.done:
		return
	case <-ctx.Done():
	}
	select {
	case <-a.done:
	case <-grace.C:
	}
}

// refusalReason is the metrics label of a record error.
func refusalReason(err error) string {
	switch {
	case errors.Is(err, errAuditFull):
		return "queue_full"
	case errors.Is(err, errAuditClosed):
		return "closed"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return "timeout"
	}
	return "store_error"
}

// withheldText tells the client why the response of its forwarded call
// is withheld.
const withheldText = "gateway: the call was forwarded, but its audit record could not be written in time, " +
	"so its response is withheld; the call may have run: check before retrying it"

// refusalText tells the client why its call was not forwarded.
func refusalText(err error) string {
	why := "the audit log is failing"
	switch refusalReason(err) {
	case "queue_full":
		why = "the audit log is not keeping up"
	case "timeout":
		why = "the audit log did not answer in time"
	case "closed":
		why = "the gateway is shutting down"
	}
	return "gateway: the call was not forwarded because its audit record could not be written (" + why + "); retry later"
}
