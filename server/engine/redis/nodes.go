package redis

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/rueidis"

	"imload/server/engine"
)

// nodeTable is the node list as the last heartbeat read it.
type nodeTable struct {
	mu      sync.Mutex
	list    []engine.Node
	live    map[string]bool
	gone    map[string]time.Time // nodes seen leaving, until their entries expire
	beatErr error                // the last heartbeat's error
	beaten  bool                 // a heartbeat went through
}

// err is nil once a heartbeat went through and while the last one did.
func (t *nodeTable) err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.beaten && t.beatErr == nil {
		return errors.New("not registered yet")
	}
	return t.beatErr
}

// isGone reports whether node was seen leaving the list lately.
func (t *nodeTable) isGone(node string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.gone[node]
	return ok
}

// nodesKeys are the node list's keys.
func (e *Engine) nodesKeys() []string {
	return []string{e.opts.Prefix + "{imload}:nodes", e.opts.Prefix + "{imload}:node-info"}
}

// beatLoop is the heartbeat's goroutine: every NodeTTL/3 it registers the
// node and reads the node list; every SessionTTL/3 it refreshes this
// node's sessions, presence entries and rooms' keys; and it retries the
// logs whose last read failed.
func (e *Engine) beatLoop() {
	defer e.wg.Done()
	beat := time.NewTicker(e.opts.NodeTTL / 3)
	defer beat.Stop()
	// The refreshes are spread over SessionTTL/3 in refreshParts slices
	// (by hash of the room or user), one slice a tick: thousands of users
	// refreshed at once made Redis busy for a burst that sends waited
	// behind.
	refresh := time.NewTicker(e.opts.SessionTTL / 3 / refreshParts)
	defer refresh.Stop()
	part := uint32(0)
	e.beat()
	for {
		select {
		case <-e.stop:
			return
		case <-beat.C:
			e.beat()
			e.retryDirty()
		case <-refresh.C:
			e.refreshRooms(part, refreshParts)
			e.refreshUsers(part, refreshParts)
			part = (part + 1) % refreshParts
		case <-e.beatWake:
			e.beat()
			e.refreshRooms(0, 1)
			e.refreshUsers(0, 1)
		}
	}
}

// refreshParts is the number of slices a refresh is spread over.
const refreshParts = 10

// inPart reports whether the room or user (kind, name) is in slice part
// of parts.
func inPart(kind byte, name string, part, parts uint32) bool {
	return parts <= 1 || slotTag(kind, name)/7%parts == part
}

// beatNow has the heartbeat beat and refresh at once (after a
// reconnection: Redis may have lost everything).
func (e *Engine) beatNow() {
	select {
	case e.beatWake <- struct{}{}:
	default:
	}
}

// beat registers the node (its connections and advertised URL) and reads
// the live nodes; a node gone from the list since the last beat is
// reported to the node (Sink.NodeGone).
func (e *Engine) beat() {
	ctx, cancel := context.WithTimeout(e.ctx, max(e.opts.NodeTTL/3, 500*time.Millisecond))
	defer cancel()
	now := e.now()
	info := strconv.FormatInt(e.sink.Conns(), 10) + "|" + e.opts.Advertise
	args := []string{strconv.FormatInt(now, 10), strconv.FormatInt(now+e.opts.NodeTTL.Milliseconds(), 10), e.opts.Node, info}
	r, err := e.do(ctx, e.sc.nodes, e.nodesKeys(), args)
	if _, isRedis := rueidis.IsRedisErr(err); err != nil && !isRedis && ctx.Err() == nil {
		// The connection was found dead (Redis restarted): once more, on
		// the one made again.
		r, err = e.do(ctx, e.sc.nodes, e.nodesKeys(), args)
	}
	var list []engine.Node
	if err == nil {
		list, err = parseNodes(r)
	}
	t := &e.nodes
	t.mu.Lock()
	if err != nil {
		if t.beatErr == nil {
			e.opts.Logger.Warn("redis engine: heartbeat failed", "err", err)
		}
		t.beatErr = err
		t.mu.Unlock()
		e.stats.heartbeatErrors.Add(1)
		return
	}
	t.beatErr, t.beaten = nil, true
	live := make(map[string]bool, len(list))
	for _, n := range list {
		live[n.ID] = true
		delete(t.gone, n.ID)
	}
	var gone []string
	for id := range t.live {
		if !live[id] && id != e.opts.Node {
			gone = append(gone, id)
			t.gone[id] = time.Now().Add(2 * e.opts.SessionTTL)
		}
	}
	for id, until := range t.gone {
		if time.Now().After(until) {
			delete(t.gone, id)
		}
	}
	t.live, t.list = live, list
	t.mu.Unlock()
	for _, id := range gone {
		e.stats.nodesGone.Add(1)
		e.opts.Logger.Warn("redis engine: a node left the node list", "node", id)
		e.sink.NodeGone(id)
	}
}

// parseNodes reads the nodes script's answer, best first.
func parseNodes(r rueidisMessage) ([]engine.Node, error) {
	arr, err := r.ToArray()
	if err != nil || len(arr) != 2 {
		return nil, errPayload
	}
	ids, err1 := arr[0].AsStrSlice()
	infos, err2 := arr[1].AsStrSlice()
	if err1 != nil || err2 != nil || len(ids) != len(infos) {
		return nil, errPayload
	}
	list := make([]engine.Node, 0, len(ids))
	for i, id := range ids {
		conns, adv, _ := strings.Cut(infos[i], "|")
		n, _ := strconv.ParseInt(conns, 10, 64)
		list = append(list, engine.Node{ID: id, Advertise: adv, Conns: n})
	}
	sortNodes(list)
	return list, nil
}

// sortNodes puts the nodes best first: fewest connections, then by id.
func sortNodes(list []engine.Node) {
	slices.SortFunc(list, func(a, b engine.Node) int {
		return cmp.Or(cmp.Compare(a.Conns, b.Conns), strings.Compare(a.ID, b.ID))
	})
}

// Nodes gives the live nodes as the last heartbeat read them (this node's
// connections as they are now), best first.
func (e *Engine) Nodes(done func([]engine.Node, error)) {
	if err := e.Health(); err != nil {
		done(nil, err)
		return
	}
	t := &e.nodes
	t.mu.Lock()
	list := slices.Clone(t.list)
	t.mu.Unlock()
	for i := range list {
		if list[i].ID == e.opts.Node {
			list[i].Conns = e.sink.Conns()
		}
	}
	sortNodes(list)
	done(list, nil)
}

// deregister removes this node from the node list (a clean stop), so the
// others drop it at once.
func (e *Engine) deregister() {
	ctx, cancel := context.WithTimeout(e.ctx, time.Second)
	defer cancel()
	now := strconv.FormatInt(e.now(), 10)
	if _, err := e.do(ctx, e.sc.nodes, e.nodesKeys(), []string{now, now, e.opts.Node, ""}); err != nil {
		e.opts.Logger.Warn("redis engine: could not leave the node list (it expires)", "err", err)
	}
}
