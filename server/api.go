package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"imload/mux"
	"imload/server/engine"
)

// The server API (docs/api.md): a team's backend publishes to rooms, sends
// private messages, disconnects users and reads presence, history and a
// user's connections, on a listener of its own (--api-addr), guarded by a
// key (--api-key-file). JSON in and out; errors carry the protocol's
// names. Each endpoint goes through what a session's command does: a
// publish is a Log.Publish under the room's lock, answered at its release
// (offsets, cid dedup, durability); a DM is the engine's DM. Nothing here
// holds a lock across I/O: a handler waits for the engine's answer on its
// own goroutine (an HTTP request's), never a worker.

// SystemSender is the sender of a message the server API publishes
// without a user: no user name can contain '@', so no user can pass for
// it.
const SystemSender = mux.SystemName

// systemAuthor is the system sender, shared by its messages (the engine
// keeps the pointer in the entries it retains).
var systemAuthor = &engine.Author{Name: SystemSender, Color: "#6c757d"}

// MaxReasonBytes bounds the reason of a disconnect.
const MaxReasonBytes = 128

// APIHandler returns the handler of the server API (docs/api.md), every
// request checked against the API key first.
func (s *Server) APIHandler() http.Handler {
	m := http.NewServeMux()
	m.HandleFunc("POST /api/publish", s.apiPublish)
	m.HandleFunc("POST /api/dm", s.apiDM)
	m.HandleFunc("POST /api/disconnect", s.apiDisconnect)
	m.HandleFunc("POST /api/presence", s.apiPresence)
	m.HandleFunc("POST /api/history", s.apiHistory)
	m.HandleFunc("POST /api/connections", s.apiConnections)
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/api/") && r.Method != http.MethodPost {
			apiError(w, mux.Errorf(405, mux.ErrUnknownCommand, "use POST with a JSON body"))
			return
		}
		apiError(w, mux.Errorf(404, mux.ErrUnknownCommand, "no such endpoint (see docs/api.md)"))
	})
	return s.apiGuard(m)
}

// apiGuard counts the request and lets it through only with the API key
// (Authorization: Bearer KEY), compared in constant time (of the keys'
// hashes, so that not even the length leaks).
func (s *Server) apiGuard(h http.Handler) http.Handler {
	want := sha256.Sum256(s.cfg.APIKey)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.counters.apiRequests.Add(1)
		auth := r.Header.Get("Authorization")
		ok := len(auth) > len("Bearer ") && strings.EqualFold(auth[:len("Bearer ")], "Bearer ")
		var key string
		if ok {
			key = auth[len("Bearer "):]
		}
		got := sha256.Sum256([]byte(key))
		if !ok || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			s.counters.apiUnauthorized.Add(1)
			w.Header().Set("WWW-Authenticate", `Bearer realm="imload"`)
			apiError(w, mux.Errorf(mux.CodeUnauthorized, mux.ErrUnauthorized, "no or a wrong API key: send Authorization: Bearer KEY"))
			return
		}
		h.ServeHTTP(w, r)
	})
}

// apiError answers err as the protocol's error: the HTTP status is its
// code, the body {"code","error","msg"}.
func apiError(w http.ResponseWriter, err error) {
	me := mux.AsError(err)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(me.Code)
	_ = json.NewEncoder(w).Encode(struct {
		Code  int    `json:"code"`
		Error string `json:"error"`
		Msg   string `json:"msg,omitempty"`
	}{me.Code, me.Name, me.Msg})
}

// apiReply answers body (JSON already encoded) with 200.
func apiReply(w http.ResponseWriter, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(body)
	w.Write([]byte("\n"))
}

// apiBody decodes the request's JSON body into v, at most
// Limits.MaxMessageBytes of it; false when it answered an error.
func (s *Server) apiBody(w http.ResponseWriter, r *http.Request, v any) bool {
	if s.shuttingDown.Load() {
		apiError(w, mux.Errorf(mux.CodeShuttingDown, mux.ErrShuttingDown, "the server is shutting down"))
		return false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(s.cfg.Limits.MaxMessageBytes)))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		apiError(w, mux.Errorf(mux.CodeTooLarge, mux.ErrTooLarge, "a request body is at most %d bytes (--max-message)", s.cfg.Limits.MaxMessageBytes))
		return false
	case err != nil:
		apiError(w, mux.Errorf(mux.CodeBadRequest, mux.ErrMalformed, "cannot read the body: %v", err))
		return false
	}
	if err := mux.BodyOf(body, v); err != nil {
		apiError(w, err)
		return false
	}
	return true
}

// author is the sender the API names: user, or the system sender. A user
// with sessions on this node keeps the colour it has here.
func (s *Server) author(user string) (*engine.Author, error) {
	if user == "" {
		return systemAuthor, nil
	}
	if err := mux.CheckName(user); err != nil {
		return nil, err
	}
	s.hub.usersMu.Lock()
	u := s.hub.users[mux.NameKey(user)]
	s.hub.usersMu.Unlock()
	if u != nil {
		return &u.Author, nil
	}
	return &engine.Author{Name: user, Color: engine.Color(user)}, nil
}

// authorGen is the generation of who (from author) as the sender of a
// private message of the server API: the system's; under --auth jwt a
// verified user's; else the generation of the user's sessions here, or ""
// (the engine finds whoever holds the name).
func (s *Server) authorGen(who *engine.Author) string {
	switch {
	case who == systemAuthor:
		return engine.SystemGen
	case s.auth != nil:
		return engine.VerifiedGen
	}
	s.hub.usersMu.Lock()
	defer s.hub.usersMu.Unlock()
	if u := s.hub.users[mux.NameKey(who.Name)]; u != nil {
		return u.gen
	}
	return ""
}

// engineCall calls the engine (start passes its done function on) from a
// request's goroutine and waits for the answer. What the engine's Sink
// queues inside the call (the local engine delivers a DM there) is written
// once the call has returned, as on a worker (await.go).
func engineCall[T any](s *Server, start func(done func(T, error))) (T, error) {
	type answer struct {
		v   T
		err error
	}
	ch := make(chan answer, 1)
	s.enterEngine()
	start(func(v T, err error) { ch <- answer{v, err} })
	var out outbox
	s.leaveEngine(&out)
	out.flush()
	a := <-ch // the engine always answers (the Redis engine's requests time out)
	return a.v, a.err
}

// openRoomSync opens room name for a request of the server API (and, with
// create, makes it, within --max-rooms), waiting for the engine.
func (s *Server) openRoomSync(name string, create bool) (*room, error) {
	for {
		if r := s.hub.room(name); r != nil {
			return r, nil
		}
		gen := s.hub.dropGen()
		o, err := engineCall(s, func(done func(engine.Opened, error)) { s.engine.Open(name, false, done) })
		if errors.Is(err, engine.ErrUnknownRoom) && create {
			if err := s.hub.reserveRoom(nil); err != nil {
				return nil, err
			}
			gen = s.hub.dropGen()
			o, err = engineCall(s, func(done func(engine.Opened, error)) { s.engine.Open(name, true, done) })
			s.hub.unreserveRoom()
		}
		if err != nil {
			return nil, roomRefused(name, err)
		}
		if r := s.adopt(name, o, gen); r != nil {
			return r, nil
		}
		// Rooms were dropped meanwhile: open again.
	}
}

// publish publishes d to room name as a session's send does (the room's
// log, under its lock, its pushes queued to the members), and waits for
// its outcome: its release, or ctx's end.
func (s *Server) publish(ctx context.Context, name string, d *engine.Draft) (*mux.SendResp, error) {
	type outcome struct {
		off   uint64
		ts    int64
		dup   bool
		err   error
		epoch string
	}
	ch := make(chan outcome, 1)
	for {
		r, err := s.openRoomSync(name, true)
		if err != nil {
			return nil, err
		}
		var out outbox
		r.mu.Lock()
		if s.hub.room(name) != r { // dropped by the janitor meanwhile
			r.mu.Unlock()
			continue
		}
		r.log.Expire(d.TS - s.cfg.HistoryAge.Milliseconds())
		ticket, err := r.log.Publish(d)
		if err != nil {
			r.mu.Unlock()
			s.counters.storeRefused.Add(1)
			return nil, engineRefused(err)
		}
		r.wait(waiter{ticket: ticket, api: func(rel *engine.Released) {
			ch <- outcome{off: rel.Off, ts: rel.TS, dup: rel.Dup, err: rel.Err, epoch: r.log.Epoch()}
		}})
		r.take(s, &out)
		r.mu.Unlock()
		out.flush()
		break
	}
	select {
	case o := <-ch:
		if o.err != nil {
			return nil, engineRefused(o.err)
		}
		return &mux.SendResp{Room: name, Epoch: o.epoch, Offset: o.off, TS: o.ts, Dup: o.dup}, nil
	case <-ctx.Done():
		return nil, mux.Errorf(mux.CodeUnavailable, mux.ErrUnavailable, "the request ended before the message was released: publish again with the same cid")
	}
}
