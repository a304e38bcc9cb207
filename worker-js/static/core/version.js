// @ts-check
// Versions shared by the worker and the tabs. The worker's name carries
// both, so tabs of two deploys never share a worker (docs/browser.md).
export const PROTOCOL_VERSION = 1; // docs/protocol.md, mux.ProtocolVersion
export const BUILD = '4';          // bump when worker and tab messages change (2: outbox, DMs, wake, queries; 3: tokens of --auth jwt, DM history by offset; 4: tokenTimeoutMs, display names)
export const WORKER_NAME = `imload-p${PROTOCOL_VERSION}-b${BUILD}`;
export const LEADER_LOCK = `${WORKER_NAME}-leader`;
export const BUS_NAME = `${WORKER_NAME}-bus`;
export const TAB_LOCK_PREFIX = `${WORKER_NAME}-tab-`;
export const DB_NAME = `imload-cache-p${PROTOCOL_VERSION}`;

// Sharing modes as the server counts them (attach.mode).
export const MODES = Object.freeze({
  shared: 'shared_worker',
  leader: 'leader_tab',
  direct: 'direct',
});

// modeFromParam maps ?mode=shared|leader|direct (or the protocol names) to a
// protocol mode, or '' for automatic choice.
export function modeFromParam(p) {
  switch (String(p || '').toLowerCase()) {
    case 'shared': case 'shared_worker': case 'sharedworker': case 'worker': return MODES.shared;
    case 'leader': case 'leader_tab': case 'tab': return MODES.leader;
    case 'direct': case 'socket': return MODES.direct;
    default: return '';
  }
}
