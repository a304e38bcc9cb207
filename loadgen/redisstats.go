package loadgen

import (
	"context"
	"time"

	"imload/reports"
)

// The Redis a local cluster shares (imload run --nodes): what a run cost
// it, from its counters before and after (WithRedisCounters).

// redisNotes maps the Redis counters kept to their note names.
var redisNotes = map[string]string{
	"total_commands_processed": reports.NoteRedisCommands,
	"total_net_input_bytes":    reports.NoteRedisBytesIn,
	"total_net_output_bytes":   reports.NoteRedisBytesOut,
	"cmdstat_evalsha":          reports.NoteRedisEvalsha,
	"cmdstat_spublish":         reports.NoteRedisSpublish,
}

// redisCounters samples the shared Redis's counters (nil without one, or
// when it does not answer within 2 s).
func (e *engine) redisCounters() map[string]int64 {
	if e.o.redis == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	m, err := e.o.redis(ctx)
	if err != nil {
		e.o.logf("%s: the Redis counters: %v", e.mode, err)
		return nil
	}
	return m
}

// redisDeltas returns the notes of what the run cost Redis: the
// differences of the counters kept (none unless both samples were taken,
// and none that went down: Redis restarted meanwhile).
func redisDeltas(before, after map[string]int64) map[string]int64 {
	if before == nil || after == nil {
		return nil
	}
	out := make(map[string]int64, len(redisNotes))
	for k, note := range redisNotes {
		if d := after[k] - before[k]; d >= 0 {
			out[note] = d
		} else {
			return nil
		}
	}
	return out
}
