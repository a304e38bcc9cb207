package loadgen

import (
	"maps"
	"math"
	"math/rand/v2"
	"net"
	"strings"
	"testing"
	"time"

	"imload/reports"
	"imload/server"
)

func TestPoissonPacerMeanAndSpread(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	p := PoissonPacer{PerSecond: 4}
	const n = 200000
	var sum, sumSq float64
	for i := 0; i < n; i++ {
		d := p.Next(r).Seconds()
		if d < 0 {
			t.Fatal("negative interval")
		}
		sum += d
		sumSq += d * d
	}
	mean := sum / n
	sd := math.Sqrt(sumSq/n - mean*mean)
	// Exponential: mean = sd = 1/rate.
	if math.Abs(mean-0.25) > 0.005 || math.Abs(sd-0.25) > 0.01 {
		t.Fatalf("mean %.4f sd %.4f, want 0.25 and 0.25", mean, sd)
	}
	if p.Rate() != 4 {
		t.Fatalf("rate %v", p.Rate())
	}
	if (PoissonPacer{}).Next(r) >= 0 || (ConstantPacer{}).Next(r) >= 0 {
		t.Fatal("a zero rate must mean never")
	}
}

func TestConstantPacerAndFirstDelay(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	p := ConstantPacer{PerSecond: 10}
	if d := p.Next(r); d != 100*time.Millisecond {
		t.Fatalf("interval %v", d)
	}
	for i := 0; i < 1000; i++ {
		if d := firstDelay(p, r); d < 0 || d >= 100*time.Millisecond {
			t.Fatalf("first delay %v outside one interval", d)
		}
	}
}

// The open model: the schedule is a function of the pacer alone. A
// scheduler that fires late still reports the planned time, so latency
// measured from it includes the lateness.
func TestEventHeapOrder(t *testing.T) {
	var h eventHeap
	r := rand.New(rand.NewPCG(5, 6))
	for i := 0; i < 1000; i++ {
		h.push(event{at: r.Int64N(1e6)})
	}
	last := int64(-1)
	for h.Len() > 0 {
		e := h.pop()
		if e.at < last {
			t.Fatalf("heap out of order: %d after %d", e.at, last)
		}
		last = e.at
	}
}

func TestRangeSet(t *testing.T) {
	var rs rangeSet
	for _, o := range []uint64{1, 2, 3, 7, 5, 6, 4, 10} {
		if rs.add(o) {
			t.Fatalf("%d reported as duplicate", o)
		}
	}
	if len(rs) != 2 || rs[0] != (span{1, 7}) || rs[1] != (span{10, 10}) {
		t.Fatalf("spans %v", rs)
	}
	for _, o := range []uint64{1, 4, 7, 10} {
		if !rs.add(o) {
			t.Fatalf("%d not reported as duplicate", o)
		}
	}
	if n := rs.countIn(0, 10); n != 8 {
		t.Fatalf("count %d", n)
	}
	if n := rs.countIn(3, 6); n != 3 {
		t.Fatalf("count in (3,6] = %d", n)
	}
	rs.add(9)
	rs.add(8)
	if len(rs) != 1 || rs[0] != (span{1, 10}) {
		t.Fatalf("spans after filling %v", rs)
	}
}

// verify runs a receive sequence through a track and closes it at to.
func verify(from uint64, recv []uint64, to uint64, paging bool) (reports.Delivery, *roomTrack) {
	var v verifier
	tr := &roomTrack{joined: true, from: from, epoch: "e"}
	for _, o := range recv {
		// While paging, offsets below the highest one received were fetched
		// (history), not pushed.
		push := !paging || o > tr.got.maxOffset()
		switch tr.receive(o, push) {
		case recvDup:
			v.duplicated.Add(1)
		case recvReordered:
			v.reordered.Add(1)
		}
	}
	v.close(tr, to)
	return v.delivery(), tr
}

func TestVerifierCounts(t *testing.T) {
	cases := []struct {
		name   string
		from   uint64
		recv   []uint64
		to     uint64
		paging bool
		want   reports.Delivery
	}{
		{"all in order", 10, []uint64{11, 12, 13, 14}, 14, false, reports.Delivery{Expected: 4, Delivered: 4}},
		{"lost in the middle", 0, []uint64{1, 2, 4, 5}, 5, false, reports.Delivery{Expected: 5, Delivered: 4, Lost: 1}},
		{"lost at the end", 0, []uint64{1, 2}, 5, false, reports.Delivery{Expected: 5, Delivered: 2, Lost: 3, LostTail: 3}},
		{"a gap and a tail", 0, []uint64{1, 2, 4, 5}, 8, false, reports.Delivery{Expected: 8, Delivered: 4, Lost: 4, LostTail: 3}},
		{"nothing received", 3, nil, 6, false, reports.Delivery{Expected: 3, Lost: 3, LostTail: 3}},
		{"duplicate", 0, []uint64{1, 2, 2, 3}, 3, false, reports.Delivery{Expected: 3, Delivered: 3, Duplicated: 1}},
		{"reordered", 0, []uint64{1, 3, 2, 4}, 4, false, reports.Delivery{Expected: 4, Delivered: 4, Reordered: 1}},
		{"history before the join is not a delivery", 5, []uint64{3, 4, 5, 6}, 6, false, reports.Delivery{Expected: 1, Delivered: 1}},
		// A resume that pages history while newer pushes arrive: the older
		// offsets filled in afterwards are not "reordered".
		{"paging resume", 0, []uint64{1, 2, 6, 7, 3, 4, 5}, 7, true, reports.Delivery{Expected: 7, Delivered: 7}},
	}
	for _, c := range cases {
		got, _ := verify(c.from, c.recv, c.to, c.paging)
		if got != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
}

// A resume answered with reset in the same epoch: the offsets the server no
// longer had are gone, not lost; anything else missing is still lost.
func TestVerifierResetGap(t *testing.T) {
	var v verifier
	tr := &roomTrack{joined: true, from: 10, epoch: "e"}
	for _, o := range []uint64{11, 12} { // then offline; 13..40 trimmed from history
		tr.receive(o, true)
	}
	tr.gone = append(tr.gone, span{13, 40})
	for o := uint64(41); o <= 60; o++ { // fetched from the oldest kept
		if o != 50 { // ...but 50 never arrives: a true loss
			tr.receive(o, false)
		}
	}
	tr.receive(20, true) // a late push inside the gap still counts as delivered
	v.close(tr, 60)
	if got := v.delivery(); got != (reports.Delivery{Expected: 23, Delivered: 22, Lost: 1}) {
		t.Fatalf("%+v", got)
	}
	if g := v.gone.Load(); g != 27 {
		t.Fatalf("gone %d, want 27", g)
	}
	// While paging, a resume starts from the last offset asked for, not
	// from the highest one pushed meanwhile.
	tr2 := &roomTrack{joined: true, from: 0, epoch: "e", paging: true, asked: 30}
	tr2.receive(90, true)
	if tr2.last() != 30 {
		t.Fatalf("resume from %d", tr2.last())
	}
	tr2.paging = false
	if tr2.last() != 90 {
		t.Fatalf("resume from %d after paging", tr2.last())
	}
}

// A tab that closes (churn) is counted up to what it received; a new
// incarnation joining later expects only what comes after its join point.
func TestVerifierChurnedMember(t *testing.T) {
	var v verifier
	old := &roomTrack{joined: true, from: 0, epoch: "e"}
	for _, o := range []uint64{1, 2, 3} {
		old.receive(o, true)
	}
	v.close(old, old.got.maxOffset()) // closed at 3: offsets 4.. were never its business
	nw := &roomTrack{joined: true, from: 6, epoch: "e"}
	for _, o := range []uint64{7, 8} {
		nw.receive(o, true)
	}
	v.close(nw, 9) // room top at the end is 9: 9 is lost
	if got := v.delivery(); got != (reports.Delivery{Expected: 6, Delivered: 5, Lost: 1, LostTail: 1}) {
		t.Fatalf("%+v", got)
	}
	// A track that never joined counts nothing.
	v2 := verifier{}
	v2.close(&roomTrack{}, 100)
	if got := v2.delivery(); got != (reports.Delivery{}) {
		t.Fatalf("unjoined track counted: %+v", got)
	}
}

// dmFixture makes browsers with attached tabs on live links, as the
// engine would have them.
func dmFixture(tabs ...int) (*engine, []*browser) {
	e := &engine{t0: time.Now()}
	var bs []*browser
	gid := uint32(0)
	for i, n := range tabs {
		b := &browser{e: e, id: int32(i)}
		b.lastDisrupt.Store(math.MinInt64)
		s := &sock{b: b, up: true}
		for k := 0; k < n; k++ {
			t := &tab{b: b, s: s, idx: int32(k), gid: gid, sid: uint32(k + 1), inc: 1, open: true, att: true}
			gid++
			b.tabs = append(b.tabs, t)
			s.tabs = append(s.tabs, t)
		}
		b.socks = []*sock{s}
		bs = append(bs, b)
	}
	return e, bs
}

// sendDM registers a DM from tab 0 of from to to, as shard.send does.
func sendDM(d *dmTracker, k dmKey, from, to *browser, at int64) {
	tabs := appendDMTabs(nil, to, nil)
	tabs = appendDMTabs(tabs, from, from.tabs[0])
	d.sent(k, from, to, tabs, at)
}

func TestDMTrackerExpectsFromItsOwnView(t *testing.T) {
	const at = 10e9
	type want struct{ exp, del, lost, dup, mis, excused, extra, mismatch, mismatchExcused, unconfirmed int64 }
	check := func(name string, o dmOutcome, w want) {
		t.Helper()
		got := want{o.Expected, o.Delivered, o.Lost, o.Duplicated, o.Misdelivered, o.Excused, o.Extra,
			o.CountMismatch, o.CountExcused, o.Unconfirmed}
		if got != w {
			t.Errorf("%s:\n got %+v\nwant %+v", name, got, w)
		}
	}
	k := dmKey{sender: 0, seq: 1} // tab 0 of browser a has gid 0

	// a (3 tabs) sends to b (2 tabs): b's two tabs and a's two other tabs
	// must each get it once.
	_, bs := dmFixture(3, 2, 1)
	a, b := bs[0], bs[1]
	d := newDMTracker(true)
	sendDM(d, k, a, b, at)
	d.replied(k, 4)
	for _, x := range []*tab{b.tabs[0], b.tabs[1], a.tabs[1], a.tabs[2]} {
		if !d.received(k, x.b, x) {
			t.Fatalf("first copy at tab %d not counted", x.gid)
		}
	}
	check("all delivered", d.outcome(), want{exp: 4, del: 4})

	// A server that under-delivers AND under-reports does not pass: the
	// expectation comes from the generator, the count only cross-checks it.
	_, bs = dmFixture(3, 2, 1)
	a, b = bs[0], bs[1]
	d = newDMTracker(true)
	sendDM(d, k, a, b, at)
	d.replied(k, 3)
	for _, x := range []*tab{b.tabs[0], a.tabs[1], a.tabs[2]} {
		d.received(k, x.b, x)
	}
	check("lost and under-reported", d.outcome(), want{exp: 4, del: 3, lost: 1, mismatch: 1})

	// Lost with an honest count: a loss, no mismatch.
	d = newDMTracker(true)
	sendDM(d, k, a, b, at)
	d.replied(k, 4)
	for _, x := range []*tab{b.tabs[0], a.tabs[1], a.tabs[2]} {
		d.received(k, x.b, x)
	}
	check("lost", d.outcome(), want{exp: 4, del: 3, lost: 1})

	// ...excused when that tab's link was lost after the send.
	b.disrupted(b.tabs[1])
	check("lost, then excused", d.outcome(), want{exp: 4, del: 3, excused: 1})

	// Duplicates, and copies to a third browser or to the sending tab.
	_, bs = dmFixture(3, 2, 1)
	a, b, c := bs[0], bs[1], bs[2]
	d = newDMTracker(true)
	sendDM(d, k, a, b, at)
	d.replied(k, 4)
	for _, x := range []*tab{b.tabs[0], b.tabs[0], b.tabs[1], a.tabs[1], a.tabs[2]} {
		d.received(k, x.b, x)
	}
	if d.received(k, c, c.tabs[0]) || d.received(k, a, a.tabs[0]) {
		t.Fatal("a misdelivered copy counted as a first copy")
	}
	check("dup and misdelivered", d.outcome(), want{exp: 4, del: 4, dup: 1, mis: 2})

	// A tab that was attaching at the send may get it: not expected, not an
	// error, and the server may count it.
	_, bs = dmFixture(1, 2)
	a, b = bs[0], bs[1]
	b.tabs[1].att = false
	d = newDMTracker(true)
	sendDM(d, k, a, b, at)
	d.replied(k, 2)
	d.received(k, b, b.tabs[0])
	d.received(k, b, b.tabs[1])
	check("attaching tab", d.outcome(), want{exp: 1, del: 1, extra: 1})

	// A count the generator cannot explain is excused by a disruption just
	// before the send (the server still counted a dead socket's session).
	_, bs = dmFixture(1, 2)
	a, b = bs[0], bs[1]
	d = newDMTracker(true)
	sendDM(d, k, a, b, at)
	d.replied(k, 3)
	d.received(k, b, b.tabs[0])
	d.received(k, b, b.tabs[1])
	check("over-count", d.outcome(), want{exp: 2, del: 2, mismatch: 1})
	b.lastDisrupt.Store(at - 1e9)
	check("over-count after a disruption", d.outcome(), want{exp: 2, del: 2, mismatchExcused: 1})
	b.lastDisrupt.Store(at - 10e9) // long before: no excuse
	check("over-count after an old disruption", d.outcome(), want{exp: 2, del: 2, mismatch: 1})
	// ... unless a node killed then held a session of the browser: the
	// Redis engine counts a dead node's sessions until they expire (15 s).
	b.lastNodeKill.Store(at - 9e9)
	check("over-count 9 s after a node with the target died", d.outcome(), want{exp: 2, del: 2, mismatchExcused: 1})
	b.lastNodeKill.Store(at - 20e9) // 20 s before the send
	check("over-count 20 s after", d.outcome(), want{exp: 2, del: 2, mismatch: 1})
	b.lastNodeKill.Store(0)
	a.lastNodeKill.Store(at - 5e9)
	check("over-count 5 s after a node with the sender died", d.outcome(), want{exp: 2, del: 2, mismatchExcused: 1})
	a.lastNodeKill.Store(0)

	// "user offline" while the generator had the target attached.
	d = newDMTracker(true)
	sendDM(d, k, a, b, at)
	d.replied(k, dmRefused)
	if o := d.outcome(); o.CountMismatch != 1 || o.Expected != 0 || o.Refused != 1 {
		t.Errorf("refused: %+v", o)
	}

	// No reply: unconfirmed, not expected.
	d = newDMTracker(true)
	sendDM(d, k, a, b, at)
	d.received(k, b, b.tabs[0])
	check("unconfirmed", d.outcome(), want{del: 1, unconfirmed: 1})

	// A tab reopened after the send (a new session) may get it.
	_, bs = dmFixture(1, 1)
	a, b = bs[0], bs[1]
	d = newDMTracker(true)
	sendDM(d, k, a, b, at)
	d.replied(k, 1)
	b.disrupted(b.tabs[0])
	b.tabs[0].inc++
	d.received(k, b, b.tabs[0])
	check("reopened", d.outcome(), want{exp: 1, excused: 1, extra: 1})

	// socket.io: only the target's sockets get it; the sender's other tab
	// receiving it is misdelivered.
	_, bs = dmFixture(2, 2)
	a, b = bs[0], bs[1]
	d = newDMTracker(false)
	sendDM(d, k, a, b, at)
	d.replied(k, 2)
	d.received(k, b, b.tabs[0])
	d.received(k, b, b.tabs[1])
	d.received(k, a, a.tabs[1])
	check("socket.io", d.outcome(), want{exp: 2, del: 2, mis: 1})

	if d.received(dmKey{9, 9}, b, b.tabs[0]) {
		t.Fatal("a DM that was not sent counted as received")
	}
	_ = c
}

func TestHistogramsMergeAndAboveRange(t *testing.T) {
	var shards []*hists
	ref := reports.NewHistogram()
	r := rand.New(rand.NewPCG(13, 14))
	for i := 0; i < 4; i++ {
		h := newHists()
		for j := 0; j < 1000; j++ {
			v := 1 + r.Int64N(1_000_000)
			h.recordOne(hDelivery, v)
			_ = ref.RecordValue(v)
		}
		shards = append(shards, h)
	}
	shards[0].recordOne(hDelivery, 61_000_000) // above 60 s
	shards[1].recordOne(hReply, 0)             // below 1 µs: clamped
	merged, above := mergeHists(shards)
	if above[hDelivery] != 1 {
		t.Fatalf("above range %d", above[hDelivery])
	}
	if merged[hDelivery].TotalCount() != 4001 || merged[hDelivery].Max() < reports.HistHighestUs*999/1000 {
		t.Fatalf("count %d max %d", merged[hDelivery].TotalCount(), merged[hDelivery].Max())
	}
	if merged[hReply].TotalCount() != 1 {
		t.Fatalf("reply count %d", merged[hReply].TotalCount())
	}
	// Merged percentiles equal those of one histogram of every value.
	_ = ref.RecordValue(reports.HistHighestUs)
	for _, q := range []float64{50, 90, 99, 99.9} {
		if a, b := merged[hDelivery].ValueAtQuantile(q), ref.ValueAtQuantile(q); a != b {
			t.Fatalf("p%v: merged %d, reference %d", q, a, b)
		}
	}
	// And the result form round-trips exactly (for multi-machine merges).
	l := reports.NewLatency(merged[hDelivery], above[hDelivery])
	back, err := l.Histogram()
	if err != nil || !back.Equals(merged[hDelivery]) {
		t.Fatalf("hdr round trip: %v", err)
	}
	if l.AboveRange != 1 || l.Count != 4001 {
		t.Fatalf("latency %+v", l)
	}
}

func TestHeaderRoundTrip(t *testing.T) {
	b := appendText(nil, "abc123", 4242, 17, 987654321, 3, 64)
	if len(b) != 64 {
		t.Fatalf("text of %d bytes", len(b))
	}
	h, ok := parseHeader(b, "abc123")
	if !ok || h.gid != 4242 || h.seq != 17 || h.schedUs != 987654321 || h.node != 3 {
		t.Fatalf("%+v %v", h, ok)
	}
	// The largest header (every field at its widest, a day-long run) fits
	// the smallest message size.
	if b := appendText(nil, "abc123", 1<<32-1, 1<<32-1, 86_400_000_000, 1<<16-1, minMsgSize); len(b) != minMsgSize {
		t.Fatalf("the widest header takes %d bytes, more than %d", len(b), minMsgSize)
	}
	if _, ok := parseHeader([]byte("abc123:1:2:3|......"), "abc123"); ok {
		t.Fatal("a header without the node accepted")
	}
	if _, ok := parseHeader([]byte("abc123:1:2:3:65536|......"), "abc123"); ok {
		t.Fatal("a node beyond 16 bits accepted")
	}
	if _, ok := parseHeader(b, "zzz999"); ok {
		t.Fatal("another run's tag accepted")
	}
	if _, ok := parseHeader([]byte("hello world, not a header"), "abc123"); ok {
		t.Fatal("plain text accepted")
	}
}

func TestParseSourceIPs(t *testing.T) {
	ips, err := ParseSourceIPs("127.0.0.2-127.0.0.20")
	if err != nil || len(ips) != 19 || ips[0].String() != "127.0.0.2" || ips[18].String() != "127.0.0.20" {
		t.Fatalf("%v %v", ips, err)
	}
	if ips, err := ParseSourceIPs("10.0.0.1, 10.0.0.3"); err != nil || len(ips) != 2 {
		t.Fatalf("%v %v", ips, err)
	}
	for _, bad := range []string{"", "x", "127.0.0.5-127.0.0.1", "::1"} {
		if _, err := ParseSourceIPs(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if ips := AutoSourceIPs([]string{"ws://127.0.0.1:8080/ws"}, 60000); len(ips) != 3 {
		t.Fatalf("auto %v", ips)
	}
	if ips := AutoSourceIPs([]string{"ws://127.0.0.1:8080/ws"}, 15000); ips != nil {
		t.Fatalf("auto for 15000: %v", ips)
	}
	if ips := AutoSourceIPs([]string{"ws://10.1.2.3:8080/ws"}, 60000); ips != nil {
		t.Fatalf("auto for a remote target: %v", ips)
	}
	// Over every node: 60,000 sockets over three loopback nodes still take
	// three source addresses (a bound address's ports are its own, whatever
	// the node); one node elsewhere, none (127.0.0.x cannot reach it).
	three := []string{"ws://127.0.0.1:8081/ws", "ws://localhost:8082/ws", "ws://127.0.0.1:8083/ws"}
	if ips := AutoSourceIPs(three, 60000); len(ips) != 3 || !ips[2].Equal(net.IPv4(127, 0, 0, 3)) {
		t.Fatalf("auto over three loopback nodes: %v", ips)
	}
	if ips := AutoSourceIPs(append(three, "ws://10.1.2.3:8080/ws"), 60000); ips != nil {
		t.Fatalf("auto with a remote node after loopback ones: %v", ips)
	}
}

func TestScenarioValidate(t *testing.T) {
	sc := Scenario{Targets: []string{"ws://127.0.0.1:1/ws"}}.withDefaults()
	if err := sc.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := sc
	bad.Targets = []string{"http://x/ws"}
	bad.RoomsPerUser = 1000
	bad.DMRatio = 2
	if err := bad.Validate(); err == nil {
		t.Fatal("invalid scenario accepted")
	}
}

// The readers are called as the server's are (epoll, goroutine, auto); the
// old name of the epoll reader is refused with an error naming the new one.
func TestScenarioReaderNames(t *testing.T) {
	sc := Scenario{Targets: []string{"ws://127.0.0.1:1/ws"}}.withDefaults()
	for _, rd := range []string{"", ReaderAuto, ReaderEpoll, ReaderGoroutine} {
		sc.Reader = rd
		err := sc.Validate()
		if rd == ReaderEpoll && !pollerAvailable {
			if err == nil {
				t.Errorf("reader %q accepted without epoll", rd)
			}
			continue
		}
		if err != nil {
			t.Errorf("reader %q: %v", rd, err)
		}
	}
	if ReaderEpoll != server.ReaderEpoll || ReaderGoroutine != server.ReaderGoroutine || ReaderAuto != server.ReaderAuto {
		t.Errorf("generator readers %q, %q, %q; the server's %q, %q, %q",
			ReaderEpoll, ReaderGoroutine, ReaderAuto, server.ReaderEpoll, server.ReaderGoroutine, server.ReaderAuto)
	}
	for _, rd := range []string{"poller", "nope"} {
		sc.Reader = rd
		err := sc.Validate()
		if err == nil {
			t.Fatalf("reader %q accepted", rd)
		}
		if !strings.Contains(err.Error(), `"epoll"`) {
			t.Errorf("reader %q: %v, want an error naming \"epoll\"", rd, err)
		}
		if _, err := newReader(rd); err == nil {
			t.Errorf("newReader(%q) accepted", rd)
		}
	}
	sc.Reader = "poller"
	if err := sc.Validate(); !strings.Contains(err.Error(), "now called") {
		t.Errorf("reader poller: %v, want it to say it is now called epoll", err)
	}
}

// What a run cost Redis: the differences of the counters kept, none when
// a sample is missing or a counter went down (Redis restarted).
func TestRedisDeltas(t *testing.T) {
	before := map[string]int64{"total_commands_processed": 10, "total_net_input_bytes": 100, "total_net_output_bytes": 50, "cmdstat_evalsha": 1, "other": 7}
	after := map[string]int64{"total_commands_processed": 25, "total_net_input_bytes": 400, "total_net_output_bytes": 90, "cmdstat_evalsha": 4, "cmdstat_spublish": 3, "other": 9}
	got := redisDeltas(before, after)
	want := map[string]int64{reports.NoteRedisCommands: 15, reports.NoteRedisBytesIn: 300, reports.NoteRedisBytesOut: 40, reports.NoteRedisEvalsha: 3, reports.NoteRedisSpublish: 3}
	if !maps.Equal(got, want) {
		t.Fatalf("deltas %v, want %v", got, want)
	}
	if redisDeltas(nil, after) != nil || redisDeltas(after, before) != nil {
		t.Fatal("deltas without a sample, or across a restart")
	}
}
