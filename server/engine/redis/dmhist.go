package redis

import (
	"strconv"
	"strings"
	"sync/atomic"

	"imload/mux"
	"imload/server/engine"
)

// The history of private messages (engine.DMs). A conversation's keys
// share the hash tag {d:A|B} (A and B the users' mux.NameKey, in order:
// engine.DMPair): its meta hash (epoch, top, the generation and the
// spelling of each side, the newest message's time) and its stream (id
// 0-OFFSET, field d the message's blob). A DM with history is four
// scripts, each on one slot:
//
//	dm_check   on the recipient's {u:KEY}: online, the rate (a token taken)
//	dm_append  on {d:A|B}: the offset, given with the append (and the
//	           conversation made again for another generation of a side)
//	dm_deliver on the recipient's slot: the DM id, the publish on its
//	           channel (with the offset), its list of conversations
//	dm_sender  on the sender's slot: the copy for its other sessions, its
//	           list of conversations
//
// Each user's list of conversations is a hash {u:KEY}:dm (the peer's key
// → GEN|EPOCH|TOP|TS|PEER), read by dm_list for the reader's generation.
// The deployment's conversations are a sorted set {imload}:dmc by their
// newest message's time (dm_reg, a background request after each append):
// beyond DMMaxConversations the least recently active are deleted
// (dm_drop), unless a message came since.

// dmCounters are the engine's numbers about private messages.
type dmCounters struct {
	convs, trimmed, expired, evicted atomic.Int64
}

// convKeys are the names of a conversation's keys.
type convKeys struct{ meta, stream string }

func (e *Engine) convKeys(pair string) convKeys {
	h := e.opts.Prefix + "{d:" + pair + "}"
	return convKeys{meta: h + ":m", stream: h + ":s"}
}

// dmRegistry is the key of the deployment's conversations.
func (e *Engine) dmRegistry() string { return e.opts.Prefix + "{imload}:dmc" }

// dmHistory reports whether the engine keeps private messages.
func (e *Engine) dmHistory() bool { return e.opts.DMHistoryMax > 0 }

// dmCutoff is the oldest time (Unix ms) a private message is kept.
func (e *Engine) dmCutoff() int64 { return e.now() - e.opts.DMHistoryAge.Milliseconds() }

// checked is dm_check's answer: the recipient.
type checked struct {
	name, color, gen string
}

// dmHist sends a DM with history (see above). The sender's generation is
// d.FromGen, or whoever holds its name now (user_gen).
func (e *Engine) dmHist(d engine.DMSend, done func(engine.DMSent, error)) {
	fromKey := mux.NameKey(d.From.Name)
	if d.FromGen != "" {
		e.dmCheck(d, d.FromGen, done)
		return
	}
	k := e.userKeys(fromKey)
	o := op{
		sc:   e.sc.userGen,
		keys: []string{k.hash},
		done: func(r rueidisMessage, err error) {
			if err != nil {
				done(engine.DMSent{}, err)
				return
			}
			gen := ""
			if s, err := r.AsStrSlice(); err == nil && len(s) == 2 {
				gen = engine.Gen(s[0], s[1] == "1")
			}
			e.dmCheck(d, gen, done)
		},
	}
	if !e.shardOf('u', fromKey).push(o) {
		done(engine.DMSent{}, e.unavailable("dm", errQueueFull))
	}
}

// dmCheck runs dm_check on the recipient's slot, then appends.
func (e *Engine) dmCheck(d engine.DMSend, fromGen string, done func(engine.DMSent, error)) {
	toKey := mux.NameKey(d.To)
	k := e.userKeys(toKey)
	interval := 1000 / e.opts.DMInRate
	o := op{
		sc:   e.sc.dmCheck,
		keys: []string{k.hash, k.sessions},
		args: []string{strconv.FormatInt(e.now(), 10), strconv.FormatFloat(interval, 'f', -1, 64), strconv.Itoa(e.opts.DMInBurst)},
		done: func(r rueidisMessage, err error) {
			s, err := e.dmAccepted("dm_check", d.To, r, err)
			if err != nil {
				done(engine.DMSent{}, err)
				return
			}
			to := checked{name: s[1], color: s[2], gen: engine.Gen(s[3], s[4] == "1")}
			e.dmAppend(d, fromGen, to, done)
		},
	}
	if !e.shardOf('u', toKey).push(o) {
		done(engine.DMSent{}, e.unavailable("dm", errQueueFull))
	}
}

// dmRefused is the error of a refusal of dm or dm_check (nil for ok).
func (e *Engine) dmRefused(to string, s []string) error {
	switch {
	case s[0] == "none":
		return mux.Errorf(mux.CodeUserOffline, mux.ErrUserOffline, "user %q is not online", to)
	case s[0] == "reserved" && len(s) > 1:
		return mux.Errorf(mux.CodeUserOffline, mux.ErrUserOffline, "user %q is offline (the name is reserved for its owner)", s[1])
	case s[0] == "busy" && len(s) > 1:
		return mux.Errorf(mux.CodeRateLimited, mux.ErrRecipientBusy, "user %q receives more than %g private messages per second (burst %d): try again later", s[1], e.opts.DMInRate, e.opts.DMInBurst)
	}
	return nil
}

// dmAppend runs dm_append on the conversation's slot, then delivers.
func (e *Engine) dmAppend(d engine.DMSend, fromGen string, to checked, done func(engine.DMSent, error)) {
	fromKey, toKey := mux.NameKey(d.From.Name), mux.NameKey(to.name)
	pair, side := engine.DMPair(fromKey, toKey)
	var gens, users [2]string
	gens[side], gens[1-side] = fromGen, to.gen
	users[side], users[1-side] = d.From.Name, to.name
	ck := e.convKeys(pair)
	o := op{
		sc:   e.sc.dmAppend,
		keys: []string{ck.meta, ck.stream},
		args: []string{gens[0], gens[1], users[0], users[1], e.newEpoch(), strconv.Itoa(e.opts.DMHistoryMax),
			strconv.FormatInt(e.opts.DMHistoryAge.Milliseconds(), 10), strconv.FormatInt(e.dmCutoff(), 10),
			strconv.FormatInt(d.TS, 10), encodeBlob(d.TS, &d.From, d.CID, d.Text)},
		done: func(r rueidisMessage, err error) {
			if err != nil {
				done(engine.DMSent{}, err)
				return
			}
			arr, err := r.ToArray()
			if err != nil || len(arr) < 5 {
				done(engine.DMSent{}, e.unavailable("dm_append", errPayload))
				return
			}
			s := replyStrings(arr)
			off, err := strconv.ParseUint(s[1], 10, 64)
			if err != nil || s[0] == "" {
				done(engine.DMSent{}, e.unavailable("dm_append", errPayload))
				return
			}
			trimmed, _ := strconv.ParseInt(s[3], 10, 64)
			expired, _ := strconv.ParseInt(s[4], 10, 64)
			e.dmStats.trimmed.Add(trimmed)
			e.dmStats.expired.Add(expired)
			e.dmRegister(pair, d.TS)
			e.dmDeliver(d, fromGen, to, s[0], off, done)
		},
	}
	if !e.shardOf('d', pair).push(o) {
		done(engine.DMSent{}, e.unavailable("dm", errQueueFull))
	}
}

// dmEntry is a user's entry in its list of conversations: GEN|EPOCH|TOP|TS|PEER.
func dmEntry(gen, epoch string, off uint64, ts int64, peer string) string {
	return gen + "|" + epoch + "|" + strconv.FormatUint(off, 10) + "|" + strconv.FormatInt(ts, 10) + "|" + peer
}

// dmDeliver runs dm_deliver on the recipient's slot (its id, the publish,
// its list), then dm_sender on the sender's. A message appended and then
// not delivered (Redis failed in between) is answered as sent to no
// session: it is in the history.
func (e *Engine) dmDeliver(d engine.DMSend, fromGen string, to checked, epoch string, off uint64, done func(engine.DMSent, error)) {
	fromKey, toKey := mux.NameKey(d.From.Name), mux.NameKey(to.name)
	rest := dmPayloadRest(&d, epoch, off)
	listTTL := strconv.FormatInt(e.opts.DMHistoryAge.Milliseconds(), 10)
	listMax := strconv.Itoa(mux.MaxDMList)
	k := e.userKeys(toKey)
	o := op{
		sc:   e.sc.dmDeliver,
		keys: []string{k.hash, k.sessions, k.channel, k.dms},
		args: []string{strconv.FormatInt(e.now(), 10), string(rest), fromKey, dmEntry(to.gen, epoch, off, d.TS, d.From.Name), listTTL, listMax},
		done: func(r rueidisMessage, err error) {
			sent := engine.DMSent{TS: d.TS, To: engine.Author{Name: to.name, Color: to.color}, Epoch: epoch, Off: off}
			if err == nil {
				if arr, perr := r.ToArray(); perr == nil && len(arr) == 2 {
					id, _ := arr[0].AsInt64()
					n, _ := arr[1].AsInt64()
					sent.ID, sent.Sessions = uint64(id), int(n)
				}
			}
			sending := 0 // the sending session, which does not get it
			if d.Sender != (engine.SessionRef{}) {
				sending = 1
			}
			if fromKey == toKey {
				sent.Sessions = max(0, sent.Sessions-sending)
				done(sent, nil)
				return
			}
			var field, entry string
			if fromKey != mux.NameKey(mux.SystemName) { // nobody lists the system's conversations
				field, entry = toKey, dmEntry(fromGen, epoch, off, d.TS, to.name)
			}
			payload := string(appendField(appendUint([]byte{'d'}, sent.ID), to.name)) + string(rest)
			e.dmSender(fromKey, payload, sending, field, entry, sent, done)
		},
	}
	if !e.shardOf('u', toKey).push(o) {
		done(engine.DMSent{TS: d.TS, To: engine.Author{Name: to.name, Color: to.color}, Epoch: epoch, Off: off}, nil)
	}
}

// dmRegister records the conversation's activity in the deployment's set
// (a background request), and deletes those it evicts.
func (e *Engine) dmRegister(pair string, ts int64) {
	o := op{
		sc:   e.sc.dmReg,
		keys: []string{e.dmRegistry()},
		args: []string{pair, strconv.FormatInt(ts, 10), strconv.FormatInt(e.dmCutoff(), 10), strconv.Itoa(e.opts.DMMaxConversations)},
		done: func(r rueidisMessage, err error) {
			if err != nil {
				return
			}
			arr, err := r.ToArray()
			if err != nil || len(arr) == 0 {
				return
			}
			s := replyStrings(arr)
			if n, err := strconv.ParseInt(s[0], 10, 64); err == nil {
				e.dmStats.convs.Store(n)
			}
			for i := 1; i+1 < len(s); i += 2 {
				e.dmDrop(s[i], s[i+1])
			}
		},
	}
	e.shardOf('n', "dmc").pushBG(o)
}

// dmDrop deletes an evicted conversation, unless a message came since.
func (e *Engine) dmDrop(pair, score string) {
	ck := e.convKeys(pair)
	o := op{
		sc:   e.sc.dmDrop,
		keys: []string{ck.meta, ck.stream},
		args: []string{score},
		done: func(r rueidisMessage, err error) {
			if n, perr := r.AsInt64(); err == nil && perr == nil && n == 1 {
				e.dmStats.evicted.Add(1)
				if e.opts.OnDMEvicted != nil {
					e.opts.OnDMEvicted()
				}
			}
		},
	}
	e.shardOf('d', pair).pushBG(o)
}

// DMHistory reads a window of the conversation of q.User with q.Peer
// (dm_read, on the conversation's slot).
func (e *Engine) DMHistory(q engine.DMQuery, done func(engine.DMPage, error)) {
	if !e.dmHistory() {
		done(engine.DMPage{Reset: q.Resume()}, nil)
		return
	}
	if err := e.Health(); err != nil {
		done(engine.DMPage{}, err)
		return
	}
	userKey := mux.NameKey(q.User)
	pair, side := engine.DMPair(userKey, mux.NameKey(q.Peer))
	field := "ga"
	if side == 1 {
		field = "gb"
	}
	mode, x := "latest", uint64(0)
	switch {
	case q.Resume():
		mode, x = "after", q.After
	case q.Before > 0:
		mode, x = "before", q.Before
	}
	ck := e.convKeys(pair)
	a, _ := engine.DMPairKeys(pair)
	o := op{
		sc:   e.sc.dmRead,
		keys: []string{ck.meta, ck.stream},
		args: []string{field, q.Gen, strconv.FormatInt(e.dmCutoff(), 10), mode, q.Epoch,
			strconv.FormatUint(x, 10), strconv.Itoa(q.Limit)},
		done: func(r rueidisMessage, err error) {
			if err != nil {
				done(engine.DMPage{}, err)
				return
			}
			p, err := e.parseDMRead(r, a, q.Resume())
			if err != nil {
				done(engine.DMPage{}, e.unavailable("dm_read", err))
				return
			}
			done(p, nil)
		},
	}
	if !e.shardOf('d', pair).push(o) {
		done(engine.DMPage{}, e.unavailable("dm_read", errQueueFull))
	}
}

// parseDMRead reads dm_read's answer; keyA is the key of the
// conversation's first user.
func (e *Engine) parseDMRead(r rueidisMessage, keyA string, resume bool) (engine.DMPage, error) {
	arr, err := r.ToArray()
	if err != nil || len(arr) == 0 {
		return engine.DMPage{}, errPayload
	}
	if kind, _ := arr[0].ToString(); kind == "none" {
		return engine.DMPage{Reset: resume}, nil
	}
	if len(arr) != 10 {
		return engine.DMPage{}, errPayload
	}
	s := replyStrings(arr[:9])
	var p engine.DMPage
	p.Epoch = s[1]
	top, err1 := strconv.ParseUint(s[2], 10, 64)
	first, err2 := strconv.ParseUint(s[3], 10, 64)
	expired, err3 := strconv.ParseInt(s[6], 10, 64)
	xs, err4 := arr[9].AsXRangeSlices()
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil {
		return engine.DMPage{}, errPayload
	}
	e.dmStats.expired.Add(expired)
	p.Top, p.First, p.Reset, p.More = top, first, s[4] == "1", s[5] == "1"
	users := [2]string{s[7], s[8]}
	p.Messages = make([]engine.DMEntry, 0, len(xs))
	for _, x := range xs {
		off, ok := streamOffset(x.ID)
		if !ok {
			return engine.DMPage{}, errPayload
		}
		var b blob
		for _, fv := range x.FieldValues {
			if fv.Field == "d" {
				if b, err = decodeBlob(fv.Value); err != nil {
					return engine.DMPage{}, err
				}
			}
		}
		to := users[0]
		if mux.NameKey(b.from) == keyA {
			to = users[1]
		}
		p.Messages = append(p.Messages, engine.DMEntry{Off: off, TS: b.ts, From: b.from, To: to, Color: b.color, Display: b.display, Text: b.text, CID: b.cid})
	}
	return p, nil
}

// DMList reads the user's list of conversations (dm_list, on the user's
// slot): the entries of its generation, the newest first.
func (e *Engine) DMList(user, gen string, limit int, done func([]engine.DMConv, bool, error)) {
	if !e.dmHistory() {
		done(nil, false, nil)
		return
	}
	if err := e.Health(); err != nil {
		done(nil, false, err)
		return
	}
	key := mux.NameKey(user)
	k := e.userKeys(key)
	o := op{
		sc:   e.sc.dmList,
		keys: []string{k.dms},
		args: []string{gen, strconv.FormatInt(e.dmCutoff(), 10)},
		done: func(r rueidisMessage, err error) {
			if err != nil {
				done(nil, false, err)
				return
			}
			vals, err := r.AsStrSlice()
			if err != nil {
				done(nil, false, e.unavailable("dm_list", errPayload))
				return
			}
			out := make([]engine.DMConv, 0, len(vals))
			for _, v := range vals {
				parts := strings.SplitN(v, "|", 5)
				if len(parts) != 5 {
					continue
				}
				top, err1 := strconv.ParseUint(parts[2], 10, 64)
				ts, err2 := strconv.ParseInt(parts[3], 10, 64)
				if err1 != nil || err2 != nil {
					continue
				}
				out = append(out, engine.DMConv{Peer: parts[4], Epoch: parts[1], Top: top, TS: ts})
			}
			out, more := engine.NewestConvs(out, limit)
			done(out, more, nil)
		},
	}
	if !e.shardOf('u', key).push(o) {
		done(nil, false, e.unavailable("dm_list", errQueueFull))
	}
}

// DMStats reports the conversations of the deployment as this node last
// saw them, and what this node saw dropped.
func (e *Engine) DMStats() engine.DMStats {
	c := &e.dmStats
	return engine.DMStats{Conversations: c.convs.Load(), Trimmed: c.trimmed.Load(), Expired: c.expired.Load(), Evicted: c.evicted.Load()}
}
