// Compiled by TestTypeCheck (tsc --noEmit): a page written against the
// hand-written types. If client.d.ts loses or changes something a page
// uses, this stops compiling.
import { connect, Client, CommandError, TimeoutError, ERR, CLIENT_ERR, PROTOCOL_VERSION, type Message, type Conversation, type DM } from './client.js';

async function page(): Promise<void> {
  const c: Client = await connect({ name: 'alice', server: 'https://chat.example.com/', workerName: 'my-app-imload', config: { graceMs: 3000 },
    user: 'alice', getToken: async (req) => (await fetch(`/chat-token?user=${req.user}&reason=${req.reason}`)).text(), tokenTimeoutMs: 15000 });
  // a display name, when there is one, is for showing; the user name is who it is
  const label = (user: string, display?: string): string => (display ? `${display} (${user})` : user);
  c.on('detached', (d) => { if (d.error === ERR.disconnected) console.log('signed out:', d.reason); });
  c.on('auth_error', (e) => { if (e.error === CLIENT_ERR.noToken) c.retryAuth(); });
  c.on('session', (s) => console.log(label(s.user, s.display), s.expires, c.session?.display));
  const off = c.on('message', (m: Message) => console.log(m.room, m.offset, label(m.from, m.display), m.text));
  off();
  c.on('outbox', (o) => { if (o.state === 'failed') void c.retrySend(o.cid); });
  c.on('dm', (d) => console.log(d.peer, label(d.from, d.display), d.text));
  c.on('dm_conv', (e) => e.list.forEach((x: Conversation) => console.log(label(x.peer, x.display), x.unread)));
  c.on('presence', (p) => console.log(`${label(p.user, p.display)} ${p.kind === 'join' ? 'joined' : 'left'}`));
  c.on('state', (s) => { if (s.state === 'offline' && !s.kicked) c.wake('user'); });
  const j = await c.join('lobby', { history: 20 });
  console.log(j.cached, j.fetched, PROTOCOL_VERSION === 1);
  const tooLong = c.checkText('x'.repeat(c.limits.maxText + 1));
  if (tooLong) console.log(tooLong.error === ERR.tooLarge);
  try {
    const r = await c.send('lobby', 'hi');
    console.log(r.offset, r.dup);
    await c.dm('bob', 'psst');
  } catch (e) {
    if (e instanceof CommandError && e.error === ERR.userOffline) console.log('offline');
    if (e instanceof TimeoutError) console.log(e.cmd);
  }
  const older = await c.history('lobby', { before: 10, limit: 50 });
  console.log(older.more, older.messages.map((m) => m.display ?? m.from), c.browserInfo().sockets);
  const dms: DM[] = await c.dmMessages('bob');
  console.log(dms.map((d) => d.display));
  const who = await c.who('lobby');
  console.log(who.users.map((u) => label(u.name, u.display)));
  c.close();
}
void page;
