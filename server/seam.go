package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"imload/server/engine"
	"imload/server/engine/local"
	"imload/server/engine/redis"
	"imload/server/store"
)

// localNode is this node's name for the local engine.
const localNode = "local"

// newEngine makes the engine cfg asks for: the local engine, its history
// in memory (Memory) or in SQLite under DataDir, released on commit when
// durable; wrapped by cfg.WrapEngine if set.
func (s *Server) newEngine() (engine.Engine, error) {
	cfg := &s.cfg
	if cfg.Redis != "" {
		return s.newRedisEngine()
	}
	opts := local.Options{
		Node:               s.node,
		Durable:            cfg.durable(),
		HistoryMax:         cfg.HistoryMax,
		HistoryAge:         cfg.HistoryAge,
		NameGrace:          cfg.nameGrace(),
		MaxReservedNames:   cfg.MaxReservedNames,
		OnNameEvicted:      func() { s.counters.namesEvicted.Add(1) },
		DMInRate:           cfg.DMInRate,
		DMInBurst:          cfg.DMInBurst,
		DMHistoryMax:       cfg.DMHistoryMax,
		DMHistoryAge:       cfg.DMHistoryAge,
		DMMaxConversations: cfg.DMMaxConversations,
		LBS:                cfg.LBS,
		Logger:             s.logger,
	}
	if !cfg.Memory {
		opts.OpenStore = func(onCommit func([]store.Committed)) (store.Store, error) {
			st, err := store.OpenSQLite(context.Background(), cfg.DataDir, store.Options{
				MaxMessages: cfg.HistoryMax, MaxAge: cfg.HistoryAge, Logger: s.logger,
				DMMaxMessages: max(1, cfg.DMHistoryMax), DMMaxAge: cfg.DMHistoryAge,
				QueueLen: cfg.StoreQueue, Durable: cfg.durable(), NoSync: cfg.Durability == DurabilityProcess,
				OnCommit: onCommit,
			})
			if err != nil {
				return nil, fmt.Errorf("open history in %s: %w", filepath.Clean(cfg.DataDir), err)
			}
			return st, nil
		}
	}
	eng, err := local.New(context.Background(), opts)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	if cfg.WrapEngine != nil {
		return cfg.WrapEngine(eng), nil
	}
	return eng, nil
}

// newRedisEngine makes the Redis engine cfg.Redis asks for (wrapped by
// cfg.WrapEngine if set).
func (s *Server) newRedisEngine() (engine.Engine, error) {
	cfg := &s.cfg
	eng, err := redis.New(redis.Options{
		URL:                cfg.Redis,
		Prefix:             cfg.RedisPrefix,
		Node:               s.node,
		Advertise:          cfg.Advertise,
		HistoryMax:         cfg.HistoryMax,
		HistoryAge:         cfg.HistoryAge,
		NameGrace:          cfg.nameGrace(),
		MaxReservedNames:   cfg.MaxReservedNames,
		OnNameEvicted:      func() { s.counters.namesEvicted.Add(1) },
		DMInRate:           cfg.DMInRate,
		DMInBurst:          cfg.DMInBurst,
		DMHistoryMax:       cfg.DMHistoryMax,
		DMHistoryAge:       cfg.DMHistoryAge,
		DMMaxConversations: cfg.DMMaxConversations,
		Logger:             s.logger,
	})
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	if cfg.WrapEngine != nil {
		return cfg.WrapEngine(eng), nil
	}
	return eng, nil
}

// nodeID is this node's name for the engine: --node-id with Redis (by
// default the host name and a random suffix), "local" without.
func nodeID(cfg *Config) string {
	switch {
	case cfg.Redis == "":
		return localNode
	case cfg.NodeID != "":
		return cfg.NodeID
	}
	host, err := os.Hostname()
	if err != nil || redis.CheckNode(host) != nil {
		host = "node"
	}
	b := make([]byte, 3)
	rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return host + "-" + hex.EncodeToString(b)
}

// openRetained opens the rooms the engine holds at start (the local
// engine: loaded from its store), so that the janitor sweeps them like any
// other.
func (s *Server) openRetained(names []string) {
	var wg sync.WaitGroup
	gen := s.hub.dropGen() // nothing is dropped before the janitor starts
	for _, name := range names {
		wg.Add(1)
		s.engine.Open(name, false, func(o engine.Opened, err error) {
			defer wg.Done()
			if err != nil {
				s.logger.Warn("a retained room could not be opened", "room", name, "err", err)
				return
			}
			s.adopt(name, o, gen)
		})
	}
	wg.Wait()
}
