package server

import (
	"strconv"
	"time"

	"imload/mux"
	"imload/server/engine"
)

// The commands on private messages: dm, dm_history, dm_list. A DM goes to
// the engine, which gives it its place in the conversation of its two
// users (with DM history) and delivers it; the history is read from the
// engine (engine.DMs), by the session's user as its generation, so that a
// user reads only its own conversations, and only those its identity
// wrote (engine/dms.go).

func (c *conn) dm(s *session, f *mux.Frame) ([]byte, error) {
	var req mux.DMReq
	if err := mux.BodyOf(f.Body, &req); err != nil {
		return nil, err
	}
	if err := req.Validate(c.srv.cfg.Limits); err != nil {
		return nil, err
	}
	if err := c.checkSender(s); err != nil {
		return nil, err
	}
	sid, seq := f.SID, f.Seq
	d := engine.DMSend{From: s.user.Author, FromGen: s.user.gen, To: req.To, Text: req.Text, CID: req.CID, TS: time.Now().UnixMilli(), Sender: s.ref()}
	await(c, func(done func(engine.DMSent, error)) { c.srv.engine.DM(d, done) }, func(sent engine.DMSent, err error) {
		if err != nil {
			if me := mux.AsError(err); me.Name == mux.ErrRecipientBusy {
				c.srv.counters.recipientBusy.Add(1)
			}
			c.replyErrTo(sid, seq, engineRefused(err))
			return
		}
		c.srv.counters.dmsIn.Add(1)
		c.replyTo(sid, seq, dmRespBody(sent))
	})
	return nil, nil
}

// dmRespBody is the body of a dm reply (and of the server API's).
func dmRespBody(sent engine.DMSent) []byte {
	return mux.EncodeBody(mux.DMResp{ID: sent.ID, TS: sent.TS, Sessions: sent.Sessions, Epoch: sent.Epoch, Offset: sent.Off})
}

// dmHistory reads the session's user's conversation with a peer.
func (c *conn) dmHistory(s *session, f *mux.Frame) ([]byte, error) {
	var req mux.DMHistoryReq
	if err := mux.BodyOf(f.Body, &req); err != nil {
		return nil, err
	}
	if err := req.Validate(c.srv.cfg.Limits); err != nil {
		return nil, err
	}
	if s.user == nil {
		return nil, mux.Errorf(mux.CodeNameRequired, mux.ErrNameRequired, "choose a name (nick) before reading private messages")
	}
	limit := req.Limit
	if limit == 0 {
		limit = mux.DefaultHistoryLimit
	}
	q := engine.DMQuery{User: s.user.Name, Gen: s.user.gen, Peer: req.Peer, Epoch: req.Epoch,
		After: req.After, Before: req.Before, Limit: min(limit, c.srv.cfg.Limits.MaxHistory)}
	c.srv.counters.dmHistory.Add(1)
	sid, seq := f.SID, f.Seq
	await(c, func(done func(engine.DMPage, error)) { c.srv.engine.DMHistory(q, done) }, func(p engine.DMPage, err error) {
		if err != nil {
			c.replyErrTo(sid, seq, engineRefused(err))
			return
		}
		c.replyTo(sid, seq, appendDMHistory(nil, c.srv.replyBudget(c), req.Peer, &p, !q.Resume() || p.Reset))
	})
	return nil, nil
}

// appendDMHistory encodes a dm_history reply body:
// {"peer":…,"epoch":…,"top":…,"first":…,"reset":…,"more":…,"messages":[…]}.
// It carries as many of the page's messages as fit in budget bytes (a
// connection's replyBudget): the newest of them if newest (a window of
// the latest, or before an offset: more then means older ones remain),
// else the oldest (after an offset: more then means newer ones remain).
func appendDMHistory(dst []byte, budget int, peer string, p *engine.DMPage, newest bool) []byte {
	enc := make([][]byte, len(p.Messages))
	for i := range p.Messages {
		m := &p.Messages[i]
		enc[i] = mux.AppendDM(nil, &mux.DM{From: m.From, To: m.To, Color: m.Color, Display: m.Display, Text: m.Text, TS: m.TS, CID: m.CID, Epoch: p.Epoch, Offset: m.Off})
	}
	from, to, more := 0, len(enc), p.More
	size := -1 // no comma before the first
	if newest {
		for from = len(enc); from > 0 && size+len(enc[from-1])+1 <= budget; from-- {
			size += len(enc[from-1]) + 1
		}
		more = more || from > 0
	} else {
		for to = 0; to < len(enc) && size+len(enc[to])+1 <= budget; to++ {
			size += len(enc[to]) + 1
		}
		more = more || to < len(enc)
	}
	dst = append(dst, `{"peer":`...)
	dst = mux.AppendString(dst, peer)
	dst = append(dst, `,"epoch":`...)
	dst = mux.AppendString(dst, p.Epoch)
	dst = append(dst, `,"top":`...)
	dst = strconv.AppendUint(dst, p.Top, 10)
	dst = append(dst, `,"first":`...)
	dst = strconv.AppendUint(dst, p.First, 10)
	if p.Reset {
		dst = append(dst, `,"reset":true`...)
	}
	if more {
		dst = append(dst, `,"more":true`...)
	}
	dst = append(dst, `,"messages":[`...)
	for i := from; i < to; i++ {
		if i > from {
			dst = append(dst, ',')
		}
		dst = append(dst, enc[i]...)
	}
	return append(dst, "]}"...)
}

// dmList lists the session's user's conversations, the newest first.
func (c *conn) dmList(s *session, f *mux.Frame) ([]byte, error) {
	var req mux.DMListReq
	if err := mux.BodyOf(f.Body, &req); err != nil {
		return nil, err
	}
	if err := req.Validate(c.srv.cfg.Limits); err != nil {
		return nil, err
	}
	if s.user == nil {
		return nil, mux.Errorf(mux.CodeNameRequired, mux.ErrNameRequired, "choose a name (nick) before listing private messages")
	}
	limit := req.Limit
	if limit == 0 || limit > mux.MaxDMList {
		limit = mux.MaxDMList
	}
	type listed struct {
		convs []engine.DMConv
		more  bool
	}
	user, gen := s.user.Name, s.user.gen
	sid, seq := f.SID, f.Seq
	await(c, func(done func(listed, error)) {
		c.srv.engine.DMList(user, gen, limit, func(cs []engine.DMConv, more bool, err error) { done(listed{cs, more}, err) })
	}, func(l listed, err error) {
		if err != nil {
			c.replyErrTo(sid, seq, engineRefused(err))
			return
		}
		resp := mux.DMListResp{Conversations: make([]mux.DMConv, len(l.convs)), More: l.more}
		for i, dc := range l.convs {
			resp.Conversations[i] = mux.DMConv{Peer: dc.Peer, Epoch: dc.Epoch, Top: dc.Top, TS: dc.TS}
		}
		c.replyTo(sid, seq, mux.EncodeBody(resp))
	})
	return nil, nil
}
