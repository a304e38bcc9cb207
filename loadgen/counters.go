package loadgen

// The run's counters: errors by kind, reconnect steps, traffic, peaks.

import (
	"sync"
	"sync/atomic"

	"imload/reports"
)

// errKind is a kind of error, counted in Counters.Errors by name.
type errKind int

const (
	eTimeout       errKind = iota // a command got no reply in time
	eReply4xx                     // a command was refused (by name below)
	eReply5xx                     // server error reply
	eProtocol                     // an undecodable or unexpected frame from the server
	eErrorFrame                   // an error frame from the server
	eLinkLost                     // a socket closed that the generator did not close
	eDeadLink                     // no traffic (not even a pong) for the dead-link time
	eGaveUp                       // a socket went down the whole ladder
	eOfflineDrop                  // a send dropped: too many queued while offline
	eUnexpectedMsg                // a push for a session or room the generator did not expect
	eAttach                       // attach or join failed
	eStuck                        // a socket goroutine still running 15 s after the end of a mode
	eDetached                     // the server detached a session (its token expired)
	nErrKinds
)

// errNames are the Counters.Errors keys of the kinds (eReply4xx and
// eReply5xx are listed by the reply's error name instead, see errorsMap).
var errNames = [nErrKinds]string{
	eTimeout:       reports.ErrorTimeout,
	eReply4xx:      "reply_4xx",
	eReply5xx:      "reply_5xx",
	eProtocol:      reports.ErrorProtocol,
	eErrorFrame:    reports.ErrorErrorFrame,
	eLinkLost:      reports.ErrorLinkLost,
	eDeadLink:      reports.ErrorDeadLink,
	eGaveUp:        reports.ErrorGaveUp,
	eOfflineDrop:   reports.ErrorOfflineDrop,
	eUnexpectedMsg: reports.ErrorUnexpectedPush,
	eAttach:        reports.ErrorAttach,
	eStuck:         reports.ErrorStuckGoroutines,
	eDetached:      reports.ErrorDetached,
}

// counters are the run's totals, updated with atomics from every goroutine.
type counters struct {
	conns, connsPeak       atomic.Int64
	sessions, sessionsPeak atomic.Int64

	framesOut, framesIn atomic.Int64
	wsOut, wsIn         atomic.Int64
	bytesOut, bytesIn   atomic.Int64

	msgsSent, dmsSent atomic.Int64
	delivered         atomic.Int64 // room deliveries (first copies), for the series

	errs       [nErrKinds]atomic.Int64
	replyErrMu sync.Mutex
	replyErrs  map[string]int64 // 4xx/5xx replies by error name

	steps      [4]atomic.Int64 // reconnect steps: retry, switch, refetch, give_up
	goaways    atomic.Int64
	kicks      atomic.Int64 // connections closed with too_many_connections
	killed     atomic.Int64 // sockets killed on purpose
	tabsClosed atomic.Int64 // tab churn closes
}

func (c *counters) err(k errKind) { c.errs[k].Add(1) }

func (c *counters) replyErr(code int, name string) {
	if code >= 500 {
		c.err(eReply5xx)
	} else {
		c.err(eReply4xx)
	}
	c.replyErrMu.Lock()
	if c.replyErrs == nil {
		c.replyErrs = map[string]int64{}
	}
	c.replyErrs[name]++
	c.replyErrMu.Unlock()
}

func (c *counters) step(name string) {
	for i, s := range reports.ReconnectSteps {
		if s == name {
			c.steps[i].Add(1)
		}
	}
}

func (c *counters) totalErrors() int64 {
	var n int64
	for i := range c.errs {
		n += c.errs[i].Load()
	}
	return n
}

func (c *counters) totalSteps() int64 {
	var n int64
	for i := range c.steps {
		n += c.steps[i].Load()
	}
	return n
}

func addPeak(cur, peak *atomic.Int64, d int64) {
	v := cur.Add(d)
	for {
		p := peak.Load()
		if v <= p || peak.CompareAndSwap(p, v) {
			return
		}
	}
}

// errorsMap returns the error counts by kind; reply errors are listed as
// "reply_<name>" instead of the reply_4xx/5xx totals.
func (c *counters) errorsMap() map[string]int64 {
	m := map[string]int64{}
	for i := range c.errs {
		k := errKind(i)
		if k == eReply4xx || k == eReply5xx {
			continue
		}
		if v := c.errs[i].Load(); v > 0 {
			m[errNames[i]] = v
		}
	}
	c.replyErrMu.Lock()
	for name, v := range c.replyErrs {
		m[reports.ErrorReplyPrefix+name] += v
	}
	c.replyErrMu.Unlock()
	return m
}

func (c *counters) reconnectsMap() map[string]int64 {
	m := map[string]int64{}
	for i, s := range reports.ReconnectSteps {
		if v := c.steps[i].Load(); v > 0 {
			m[s] = v
		}
	}
	return m
}
