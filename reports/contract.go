package reports

// The names the load generator writes into result.json and the reports
// read back: Run.Notes keys and Counters.Errors keys. They are defined once,
// here, so that a key cannot be written under one spelling and read under
// another. The protocol names (ProtocolImload, …), the modes (ModeShared,
// ModePerTab), the reconnect steps (StepRetry, …) and the fault kinds
// (FaultCrash, FaultRestart) live beside the fields they fill, in result.go.

// Run.Notes keys: what a run counted beyond its Delivery and Counters
// (docs/loadgen.md, "Notes"). A note that is zero is left out of the result,
// except NoteDeliveriesByPush.
const (
	// Room messages.
	NoteDeliveriesByPush       = "deliveries_by_push"          // first copies that came as pushes
	NoteDeliveriesByResume     = "deliveries_by_resume"        // first copies that came in a resume reply or history page
	NoteResumeResets           = "resume_resets"               // resumes answered with reset (same epoch)
	NoteResumeResetOffsets     = "resume_reset_offsets"        // offsets gone at such a reset (not lost)
	NoteEpochResets            = "epoch_resets"                // rooms that changed epoch under a tab
	NoteTracksExcused          = "tracks_excused"              // tracks closed early (churn, give up, lost link without resume)
	NoteContentUnchecked       = "content_unchecked"           // messages too old for the content check
	NoteSendsUnconfirmed       = "sends_unconfirmed"           // sends never acknowledged, not re-sent (protocols without resume)
	NoteSendsRefusedShutdown   = "sends_refused_shutting_down" // sends refused with shutting_down (re-sent after the resume)
	NoteSendsResent            = "sends_resent"                // sends in flight at a lost link, re-sent after the resume with their cid
	NoteSendsResentDup         = "sends_resent_dup"            // of them, answered dup: the first copy had been published
	NoteDMExpected             = "dm_expected"                 // DM copies expected
	NoteDMDelivered            = "dm_delivered"                // DM copies delivered
	NoteDMExtra                = "dm_extra"                    // DM copies to tabs attaching meanwhile
	NoteDMLostExcused          = "dm_lost_excused"             // DM copies missed during a disruption
	NoteDMCountMismatchExcused = "dm_count_mismatch_excused"   // DM session counts off during a disruption
	NoteDMUnconfirmed          = "dm_unconfirmed"              // DMs never acknowledged
	NoteDMTargetOffline        = "dm_target_offline"           // DMs refused: target offline
	NoteDMNotSentOffline       = "dm_not_sent_offline"         // DMs not sent: the sender's tab was offline
	NoteSocketsKilled          = "sockets_killed"              // sockets killed on purpose (--conn-kill)
	NoteTabsClosed             = "tabs_closed"                 // tabs closed by churn (--tab-churn)
	NoteGoAways                = "goaways"                     // goaway frames received
	NoteDialFailures           = "dial_failures"               // dials or greetings that failed (the ladder retried)
	NoteLBSRefetches           = "lbs_refetches"               // /lbs address list refetches
	NoteBrowsersGaveUp         = "browsers_gave_up"            // browsers that went down the whole ladder
	NoteTokensMinted           = "tokens_minted"               // JSON Web Tokens signed for the simulated users (--jwt-hmac-secret-file)
	NoteTokenExpiring          = "token_expiring"              // token_expiring pushes received
	NoteTokenRefreshes         = "token_refreshes"             // refresh commands answered 200

	// What a run cost the Redis of a local cluster (imload run --nodes),
	// from its INFO counters before and after the run.
	NoteRedisCommands = "redis_commands"  // commands processed (those scripts run included)
	NoteRedisBytesIn  = "redis_bytes_in"  // bytes Redis read from its clients
	NoteRedisBytesOut = "redis_bytes_out" // bytes Redis wrote to its clients (pub/sub deliveries included)
	NoteRedisEvalsha  = "redis_evalsha"   // script calls (a send is one)
	NoteRedisSpublish = "redis_spublish"  // sharded publishes (a room message is one)

	// NoteServerPrefix starts the keys of the target's /stats counter
	// deltas over the run: NoteServerPrefix + a /stats counter name
	// ("server_messages_out"). Every load machine saw the same server, so a
	// merge takes the largest, not the sum.
	NoteServerPrefix = "server_"
)

// Counters.Errors keys. A reply refused by the server is counted as
// ErrorReplyPrefix + the error's name ("reply_rate_limited").
const (
	ErrorTimeout         = "timeout"           // a command got no reply in time
	ErrorProtocol        = "protocol"          // an undecodable frame from the server
	ErrorErrorFrame      = "error_frame"       // an error frame from the server
	ErrorLinkLost        = "link_lost"         // a socket closed that the generator did not close
	ErrorDeadLink        = "dead_link"         // no traffic (not even a pong) for the dead-link time
	ErrorGaveUp          = "gave_up"           // a socket went down the whole ladder
	ErrorOfflineDrop     = "offline_drop"      // a send dropped: too many held while offline
	ErrorUnexpectedPush  = "unexpected_push"   // a push for a session or room the generator did not expect
	ErrorAttach          = "attach"            // an attach or join failed
	ErrorStuckGoroutines = "stuck_goroutines"  // socket goroutines still running 15 s after the end of a mode
	ErrorDetached        = "session_detached"  // the server detached a session (its token expired, or the server API disconnected its user)
	ErrorDMLost          = "dm_lost"           // a DM copy that never came, with no disruption to excuse it
	ErrorDMDuplicated    = "dm_duplicated"     // a DM copy received twice
	ErrorDMMisdelivered  = "dm_misdelivered"   // a DM copy to a tab it was not for
	ErrorDMCountMismatch = "dm_count_mismatch" // a DM reply whose session count differs from the generator's own view
	ErrorReplyPrefix     = "reply_"
)

// Keys of the server's /stats object (server/stats.go) that the load
// generator and the reports both read: the load generator keeps the sample
// with the most physical connections (then sessions) as a server_stats_peak,
// and the reports show a node's own connection count from its
// server_stats_peak.
const (
	StatPhysicalConnections = "physical_connections" // open WebSockets
	StatLogicalSessions     = "logical_sessions"     // attached sessions (tabs)
	StatUptimeSeconds       = "uptime_seconds"       // the server's uptime: a restart makes it go down
)

// StatNodes is the key the load generator adds to a run's
// server_stats_peak when it is the aggregate of several nodes' /stats
// (Run.ServerStatsPeak): how many nodes answered that second.
const StatNodes = "nodes"
