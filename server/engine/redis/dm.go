package redis

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
	"time"

	"imload/mux"
	"imload/server/engine"
)

// DM runs the dm script on the recipient's slot (online check, rate,
// the recipient's next DM id, publish on the recipient's channel), then,
// for the sender's other sessions, the dm_sender script on the sender's
// slot (publish on the sender's channel if it has other sessions). done
// gets the sessions it went to: the recipient's, and the sender's others.
//
// With DM history the message goes through its conversation first
// (dmhist.go).
func (e *Engine) DM(d engine.DMSend, done func(engine.DMSent, error)) {
	if err := e.Health(); err != nil {
		done(engine.DMSent{}, err)
		return
	}
	if e.dmHistory() {
		e.dmHist(d, done)
		return
	}
	toKey, fromKey := mux.NameKey(d.To), mux.NameKey(d.From.Name)
	k := e.userKeys(toKey)
	rest := dmPayloadRest(&d, "", 0)
	interval := 1000 / e.opts.DMInRate
	o := op{
		sc:   e.sc.dm,
		keys: []string{k.hash, k.sessions, k.channel},
		args: []string{strconv.FormatInt(e.now(), 10), strconv.FormatFloat(interval, 'f', -1, 64), strconv.Itoa(e.opts.DMInBurst), string(rest)},
		done: func(r rueidisMessage, err error) {
			s, err := e.dmAccepted("dm", d.To, r, err)
			if err != nil {
				done(engine.DMSent{}, err)
				return
			}
			id, _ := strconv.ParseUint(s[1], 10, 64)
			n, _ := strconv.Atoi(s[2])
			sent := engine.DMSent{ID: id, TS: d.TS, Sessions: n, To: engine.Author{Name: s[3], Color: s[4]}}
			sending := 0 // the sending session, which does not get it
			if d.Sender != (engine.SessionRef{}) {
				sending = 1
			}
			if fromKey == toKey {
				sent.Sessions -= sending
				done(sent, nil)
				return
			}
			e.dmSender(fromKey, string(appendField(appendUint([]byte{'d'}, id), s[3]))+string(rest), sending, "", "", sent, done)
		},
	}
	if !e.shardOf('u', toKey).push(o) {
		done(engine.DMSent{}, e.unavailable("dm", errQueueFull))
	}
}

// dmAccepted reads the reply of script (dm or dm_check), which checks
// that user to may receive a DM: its fields ("ok" and at least 4 more),
// or why the DM is refused (dmRefused), or ErrUnavailable.
func (e *Engine) dmAccepted(script, to string, r rueidisMessage, err error) ([]string, error) {
	if err != nil {
		return nil, err
	}
	arr, err := r.ToArray()
	if err != nil || len(arr) == 0 {
		return nil, e.unavailable(script, errPayload)
	}
	s := replyStrings(arr)
	if err := e.dmRefused(to, s); err != nil {
		return nil, err
	}
	if s[0] != "ok" || len(s) < 5 {
		return nil, e.unavailable(script, errPayload)
	}
	return s, nil
}

// dmPayloadRest is the payload of a DM's publish after its id and
// recipient (codec.go): from colour ts cid text, the sending session, and
// then the message's place in its conversation (epoch and offset, "" and 0
// without DM history) and the sender's display name, both left out when
// there is neither.
func dmPayloadRest(d *engine.DMSend, epoch string, off uint64) []byte {
	rest := make([]byte, 0, 64+len(d.From.Name)+len(d.From.Color)+len(d.From.Display)+len(d.CID)+len(d.Text)+len(d.Sender.Conn.Node)+len(epoch))
	rest = appendField(rest, d.From.Name)
	rest = appendField(rest, d.From.Color)
	rest = appendInt(rest, d.TS)
	rest = appendField(rest, d.CID)
	rest = appendField(rest, d.Text)
	rest = appendField(rest, d.Sender.Conn.Node)
	rest = appendUint(rest, d.Sender.Conn.ID)
	rest = appendInt(rest, d.Sender.Conn.Since.UnixNano())
	rest = appendUint(rest, uint64(d.Sender.SID))
	if epoch != "" || d.From.Display != "" {
		rest = appendField(rest, epoch)
		rest = appendUint(rest, off)
	}
	if d.From.Display != "" {
		rest = appendField(rest, d.From.Display)
	}
	return rest
}

// dmSender publishes the copy of a DM for the sender's other sessions
// (sending: 1 when the sending session is one of the sender's, 0 for
// none); with DM history, it puts the conversation's entry (field, entry;
// "": none) in the sender's list of conversations.
func (e *Engine) dmSender(fromKey, payload string, sending int, field, entry string, sent engine.DMSent, done func(engine.DMSent, error)) {
	k := e.userKeys(fromKey)
	o := op{
		sc:   e.sc.dmS,
		keys: []string{k.sessions, k.channel, k.dms},
		args: []string{strconv.FormatInt(e.now(), 10), payload, strconv.Itoa(sending), field, entry,
			strconv.FormatInt(e.opts.DMHistoryAge.Milliseconds(), 10), strconv.Itoa(mux.MaxDMList)},
		done: func(r rueidisMessage, err error) {
			if n, perr := r.AsInt64(); err == nil && perr == nil && n > int64(sending) {
				sent.Sessions += int(n) - sending
			}
			done(sent, nil) // delivered to the recipient whatever happened here
		},
	}
	if !e.shardOf('u', fromKey).push(o) {
		done(sent, nil)
	}
}

// dmMessage delivers a private message published on the channel of user
// key to this node's sessions of that user.
func (e *Engine) dmMessage(key, payload string) error {
	f := fields{s: payload}
	id, to, from, color, ts, cid, text := f.uint(), f.next(), f.next(), f.next(), f.int(), f.next(), f.next()
	exNode, exConn, exSince, exSID := f.next(), f.uint(), f.int(), f.uint()
	var epoch, display string
	var off uint64
	if f.err == nil && f.s != "" { // its place in the conversation ("", 0: no DM history)
		epoch, off = f.next(), f.uint()
	}
	if f.err == nil && f.s != "" {
		display = f.next()
	}
	if f.err != nil {
		return f.err
	}
	body := mux.EncodeBody(mux.DM{ID: id, From: from, To: to, Color: color, Display: display, Text: text, TS: ts, CID: cid, Epoch: epoch, Offset: off})
	d := engine.DMDelivery{Body: body, Users: []string{key}}
	if exNode != "" { // else no sending session (the server API)
		d.Except = engine.SessionRef{
			Conn: engine.ConnRef{Node: exNode, ID: exConn, Since: time.Unix(0, exSince)},
			SID:  uint32(exSID),
		}
	}
	e.sink.DM(d)
	return nil
}

// disconnectMessage tells the node to detach its sessions of user key.
func (e *Engine) disconnectMessage(key, payload string) error {
	f := fields{s: payload}
	reason := f.next()
	if f.err != nil {
		return f.err
	}
	e.sink.Disconnect(key, reason)
	return nil
}

// Disconnect publishes a disconnect on the user's channel (the nodes with
// sessions of the user detach them) and answers the user's live sessions.
func (e *Engine) Disconnect(name, reason string, done func(int, error)) {
	if err := e.Health(); err != nil {
		done(0, err)
		return
	}
	key := mux.NameKey(name)
	k := e.userKeys(key)
	o := op{
		sc:   e.sc.disconnect,
		keys: []string{k.sessions, k.channel},
		args: []string{strconv.FormatInt(e.now(), 10), string(appendField([]byte{'x'}, reason))},
		done: func(r rueidisMessage, err error) {
			if err != nil {
				done(0, err)
				return
			}
			n, err := r.AsInt64()
			if err != nil {
				done(0, e.unavailable("disconnect", errPayload))
				return
			}
			done(int(n), nil)
		},
	}
	if !e.shardOf('u', key).push(o) {
		done(0, e.unavailable("disconnect", errQueueFull))
	}
}

// Conns reads the user's live sessions on every node and answers them by
// connection, oldest first.
func (e *Engine) Conns(name string, done func([]engine.UserConn, error)) {
	if err := e.Health(); err != nil {
		done(nil, err)
		return
	}
	key := mux.NameKey(name)
	k := e.userKeys(key)
	o := op{
		sc:   e.sc.sessions,
		keys: []string{k.sessions},
		args: []string{strconv.FormatInt(e.now(), 10)},
		done: func(r rueidisMessage, err error) {
			if err != nil {
				done(nil, err)
				return
			}
			arr, err := r.ToArray()
			if err != nil {
				done(nil, e.unavailable("sessions", errPayload))
				return
			}
			done(userConns(replyStrings(arr)), nil)
		},
	}
	if !e.shardOf('u', key).push(o) {
		done(nil, e.unavailable("sessions", errQueueFull))
	}
}

// userConns groups session members (NODE|CONN|SINCE_MS|SID) by
// connection, oldest first.
func userConns(members []string) []engine.UserConn {
	var out []engine.UserConn
	idx := make(map[engine.ConnRef]int)
	for _, m := range members {
		parts := strings.Split(m, "|")
		if len(parts) != 4 {
			continue
		}
		id, err1 := strconv.ParseUint(parts[1], 10, 64)
		since, err2 := strconv.ParseInt(parts[2], 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		ref := engine.ConnRef{Node: parts[0], ID: id, Since: time.UnixMilli(since)}
		if i, ok := idx[ref]; ok {
			out[i].Sessions++
			continue
		}
		idx[ref] = len(out)
		out = append(out, engine.UserConn{Conn: ref, Sessions: 1})
	}
	slices.SortFunc(out, func(a, b engine.UserConn) int {
		if c := a.Conn.Since.Compare(b.Conn.Since); c != 0 {
			return c
		}
		if c := strings.Compare(a.Conn.Node, b.Conn.Node); c != 0 {
			return c
		}
		return cmp.Compare(a.Conn.ID, b.Conn.ID)
	})
	return out
}

// kickMessage tells the node to kick its connection named in a kick.
func (e *Engine) kickMessage(payload string) error {
	f := fields{s: payload}
	node, conn, user := f.next(), f.uint(), f.next()
	if f.err != nil {
		return f.err
	}
	if node == e.opts.Node {
		e.sink.Kick(conn, user)
	}
	return nil
}
