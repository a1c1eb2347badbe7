import { describe, expect, it } from 'vitest';
import { Proc, startBroker } from './helpers/procs.ts';

/**
 * Failover between brokers (PROTOCOL.md §5.1): producers and clients given a list move to the
 * next broker when theirs stops answering for a lease, and heal there as after a broker
 * restart: producers announce, clients resubscribe, frames flow.
 */
describe('a list of brokers', () => {
  it('when the broker in use dies, producer and client move to the next and frames flow again; a client whose first broker is dead starts on the next', async () => {
    const a = await startBroker();
    const b = await startBroker();
    const list = `${a.address},${b.address}`;
    const producer = new Proc('producer/main.ts', ['--id', '1AAA99', '--broker', list]);
    const client = new Proc('client/main.ts', ['--broker', list, '--subscribe', '1AAA99']);
    await client.waitFor(/^1AAA99: frames are arriving/);

    const killedAt = performance.now();
    await a.proc.kill('SIGKILL');
    await client.waitFor(new RegExp(`^the broker does not answer: moving to the next one, ${b.address.replace(/\./g, '\\.')}$`), 10_000);
    await producer.waitFor(/moving to the next in the list/, 10_000);
    await client.waitFor(/^1AAA99: frames are arriving again after/, 10_000);
    const healedS = (performance.now() - killedAt) / 1000;
    process.stdout.write(`figure: broker killed -> producer and client moved to the next broker, frames again after ${healedS.toFixed(1)} s\n`);
    // A heartbeat unanswered to notice (at most 2 s after the last answer), then a new session at once.
    expect(healedS).toBeLessThan(3);

    const lateAt = performance.now();
    const late = new Proc('client/main.ts', ['--broker', list, '--subscribe', '1AAA99', '--duration', '10']);
    await late.waitFor(/^(subscribed to 1AAA99|resubscribed to 1AAA99)/, 10_000);
    await late.waitFor(/^1AAA99: frames are arriving/, 10_000);
    process.stdout.write(`figure: a client whose first broker is dead was watching through the second ${((performance.now() - lateAt) / 1000).toFixed(1)} s after it started\n`);
  });
});

describe('naming several brokers', () => {
  it('takes a comma-separated --broker, or BROKER_HOST listing hosts (each with BROKER_PORT unless it names its own)', async () => {
    const { brokerAddresses } = await import('../common/options.ts');
    const { parseEndpoints } = await import('../common/config.ts');
    expect(parseEndpoints('a:5000, b:5001')).toEqual([{ host: 'a', port: 5000 }, { host: 'b', port: 5001 }]);
    expect(() => parseEndpoints(' , ')).toThrow(/host:port\[,host:port\.\.\.\]/);
    const saved = { host: process.env.BROKER_HOST, port: process.env.BROKER_PORT };
    try {
      process.env.BROKER_HOST = 'origin-0.origins, origin-1.origins:6000,[::1]:7000';
      process.env.BROKER_PORT = '5000';
      expect(brokerAddresses(undefined)).toEqual([{ host: 'origin-0.origins', port: 5000 }, { host: 'origin-1.origins', port: 6000 }, { host: '::1', port: 7000 }]);
      expect(brokerAddresses([{ host: 'x', port: 1 }])).toEqual([{ host: 'x', port: 1 }]);
    } finally {
      for (const [k, v] of [['BROKER_HOST', saved.host], ['BROKER_PORT', saved.port]] as const) if (v === undefined) delete process.env[k]; else process.env[k] = v;
    }
  });
});
