package server

import (
	"net/http"
	"time"

	"imload/mux"
	"imload/server/engine"
)

// The server API's endpoints (docs/api.md).

// apiPublishReq is the body of POST /api/publish.
type apiPublishReq struct {
	Room string `json:"room"`
	Text string `json:"text"`
	User string `json:"user,omitempty"` // on behalf of this user ("": the system sender)
	CID  string `json:"cid,omitempty"`
}

// apiPublish publishes a message to a room (made if needed), answered
// with its offset once released: the send reply's body.
func (s *Server) apiPublish(w http.ResponseWriter, r *http.Request) {
	var req apiPublishReq
	if !s.apiBody(w, r, &req) {
		return
	}
	send := mux.SendReq{Room: req.Room, Text: req.Text, CID: req.CID}
	if err := send.Validate(s.cfg.Limits); err != nil {
		apiError(w, err)
		return
	}
	who, err := s.author(req.User)
	if err != nil {
		apiError(w, err)
		return
	}
	d := engine.Draft{Who: who, Text: req.Text, CID: req.CID, TS: time.Now().UnixMilli()}
	resp, err := s.publish(r.Context(), req.Room, &d)
	if err != nil {
		apiError(w, err)
		return
	}
	apiReply(w, mux.EncodeBody(resp))
}

// apiDMReq is the body of POST /api/dm.
type apiDMReq struct {
	To   string `json:"to"`
	Text string `json:"text"`
	User string `json:"user,omitempty"` // from this user ("": the system sender)
	CID  string `json:"cid,omitempty"`
}

// apiDM sends a private message to every session of a user (and of the
// sender, if it is a user): the dm reply's body.
func (s *Server) apiDM(w http.ResponseWriter, r *http.Request) {
	var req apiDMReq
	if !s.apiBody(w, r, &req) {
		return
	}
	dm := mux.DMReq{To: req.To, Text: req.Text, CID: req.CID}
	if err := dm.Validate(s.cfg.Limits); err != nil {
		apiError(w, err)
		return
	}
	who, err := s.author(req.User)
	if err != nil {
		apiError(w, err)
		return
	}
	d := engine.DMSend{From: *who, FromGen: s.authorGen(who), To: req.To, Text: req.Text, CID: req.CID, TS: time.Now().UnixMilli()}
	sent, err := engineCall(s, func(done func(engine.DMSent, error)) { s.engine.DM(d, done) })
	if err != nil {
		if me := mux.AsError(engineRefused(err)); me.Name == mux.ErrRecipientBusy {
			s.counters.recipientBusy.Add(1)
		}
		apiError(w, engineRefused(err))
		return
	}
	s.counters.dmsIn.Add(1)
	apiReply(w, dmRespBody(sent))
}

// apiUserReq is the body of POST /api/disconnect and /api/connections.
type apiUserReq struct {
	User   string `json:"user"`
	Reason string `json:"reason,omitempty"`
}

// apiDisconnect detaches every session of a user on every node (a
// detached push, 403 disconnected, with the reason): {"sessions": n}.
func (s *Server) apiDisconnect(w http.ResponseWriter, r *http.Request) {
	var req apiUserReq
	if !s.apiBody(w, r, &req) {
		return
	}
	if err := mux.CheckName(req.User); err != nil {
		apiError(w, err)
		return
	}
	if len(req.Reason) > MaxReasonBytes {
		apiError(w, mux.Errorf(mux.CodeBadRequest, mux.ErrBadRequest, "reason longer than %d bytes", MaxReasonBytes))
		return
	}
	n, err := engineCall(s, func(done func(int, error)) { s.engine.Disconnect(req.User, req.Reason, done) })
	if err != nil {
		apiError(w, engineRefused(err))
		return
	}
	apiReply(w, mux.EncodeBody(struct {
		Sessions int `json:"sessions"`
	}{n}))
}

// apiConn is a connection of a user in the answer of /api/connections.
type apiConn struct {
	Node     string   `json:"node"`
	Conn     uint64   `json:"conn"`
	Since    int64    `json:"since"` // Unix ms
	Sessions int      `json:"sessions"`
	SIDs     []uint32 `json:"sids,omitempty"` // this node's connections only
}

// apiConnections lists a user's connections on every node:
// {"user","connections":[…]}.
func (s *Server) apiConnections(w http.ResponseWriter, r *http.Request) {
	var req apiUserReq
	if !s.apiBody(w, r, &req) {
		return
	}
	if err := mux.CheckName(req.User); err != nil {
		apiError(w, err)
		return
	}
	conns, err := engineCall(s, func(done func([]engine.UserConn, error)) { s.engine.Conns(req.User, done) })
	if err != nil {
		apiError(w, engineRefused(err))
		return
	}
	out := make([]apiConn, 0, len(conns))
	for _, uc := range conns {
		a := apiConn{Node: uc.Conn.Node, Conn: uc.Conn.ID, Sessions: uc.Sessions}
		if !uc.Conn.Since.IsZero() {
			a.Since = uc.Conn.Since.UnixMilli()
		}
		if uc.Conn.Node == s.node {
			a.SIDs, a.Since = s.hub.userSIDs(req.User, uc.Conn.ID, a.Since)
		}
		out = append(out, a)
	}
	apiReply(w, mux.EncodeBody(struct {
		User        string    `json:"user"`
		Connections []apiConn `json:"connections"`
	}{req.User, out}))
}

// apiPresence answers who is in a room: the who reply's body.
func (s *Server) apiPresence(w http.ResponseWriter, r *http.Request) {
	var req mux.WhoReq
	if !s.apiBody(w, r, &req) {
		return
	}
	if err := req.Validate(s.cfg.Limits); err != nil {
		apiError(w, err)
		return
	}
	if rm := s.hub.room(req.Room); rm != nil {
		apiReply(w, rm.who())
		return
	}
	ps, err := engineCall(s, func(done func([]engine.Present, error)) { s.engine.Who(req.Room, done) })
	if err != nil {
		apiError(w, roomRefused(req.Room, err))
		return
	}
	apiReply(w, whoBody(req.Room, ps))
}

// apiHistory reads a room's retained messages: the history reply's body
// (the same window rules).
func (s *Server) apiHistory(w http.ResponseWriter, r *http.Request) {
	var req mux.HistoryReq
	if !s.apiBody(w, r, &req) {
		return
	}
	if err := req.Validate(s.cfg.Limits); err != nil {
		apiError(w, err)
		return
	}
	rm, err := s.openRoomSync(req.Room, false)
	if err != nil {
		apiError(w, err)
		return
	}
	apiReply(w, s.historyBody(rm, &req, s.cfg.MaxQueueBytes/4))
}
