import { formatProducerId } from '../../protocol/ids.ts';
import type { FramecastClient } from '../client.ts';

/**
 * The screen: what the client core reports, as one plain sentence each for the person at the
 * prompt (and the log). The sentences are the client's interface: tests and people wait for them.
 */
export function showOnScreen(client: FramecastClient, say: (text: string) => void): void {
  const name = formatProducerId;
  client.on('unreachable', () => say('broker unreachable: retrying'));
  client.on('reachable', () => say('broker reachable again'));
  client.on('brokerShutdown', () => say('broker is shutting down: will resubscribe when it is back'));
  client.on('resubscribing', () => say('new session with the broker (restarted?): resubscribing'));
  client.on('resubscribed', (id) => say(`resubscribed to ${name(id)}`));
  client.on('subscribedLate', (id, waitedFor) => say(`subscribed to ${name(id)} (${waitedFor === 'producer' ? 'it is live now' : 'the broker answered at last'})`));
  client.on('refused', (id, why) => say(`cannot subscribe to ${name(id)}: ${why}`));
  client.on('online', (id) => say(`producer ${name(id)} is back online`));
  client.on('offline', (id, ended) => say(`producer ${name(id)} ${ended ? 'ended its stream' : 'went offline'} (staying subscribed)`));
  client.on('firstFrame', (id, bytes) => say(`${name(id)}: frames are arriving (first frame ${bytes} bytes)`));
  client.on('framesAgain', (id, silentMs) => say(`${name(id)}: frames are arriving again after ${(silentMs / 1000).toFixed(1)} s`));
  client.on('problem', (id, problem) => say(problem === 'encrypted'
    ? `${name(id)} is encrypted: start the client with --passphrase (or PASSPHRASE) to watch it`
    : `${name(id)}: frames do not decrypt with this passphrase (wrong passphrase?)`));
}
