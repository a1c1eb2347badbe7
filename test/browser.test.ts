import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Proc, startBroker } from './helpers/procs.ts';

/**
 * The live view in a real browser: Debian's chromium, headless, driven by playwright-core (no
 * browser download: `executablePath` is the system's). Skipped, saying why, where chromium is
 * missing; .ci/run installs it. Set FRAMECAST_SCREENSHOT=docs/view.png to keep the page's picture.
 */
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const why = existsSync(CHROMIUM) ? '' : `no chromium at ${CHROMIUM} (Debian: chromium; or set CHROMIUM_PATH)`;
if (why !== '') process.stdout.write(`browser test skipped: ${why}\n`);

describe.skipIf(why !== '')(`the live view in a browser${why ? ` (skipped: ${why})` : ''}`, () => {
  it('shows the live picture, sees it change and the figures move, subscribes to a second producer from the page and unsubscribes, and measures glass-to-glass delay', async () => {
    const { chromium } = await import('playwright-core');
    const broker = await startBroker();
    new Proc('producer/main.ts', ['--id', '1AAA99', '--broker', broker.address, '--title', 'Test card']);
    new Proc('producer/main.ts', ['--id', '2BBB88', '--broker', broker.address, '--title', 'Colour bars', '--video', 'samples/bars.mjpeg', '--audio', 'samples/bars.wav']);
    new Proc('producer/main.ts', ['--id', '3CCC77', '--broker', broker.address, '--title', 'Night shift', '--video', 'samples/night.mjpeg', '--audio', 'samples/night.wav']);
    const client = new Proc('client/main.ts', ['--broker', broker.address, '--subscribe', '1AAA99', '--http', '127.0.0.1:0']);
    const [, url] = await client.waitFor(/^live view: (http:\/\/127\.0\.0\.1:\d+\/)$/);
    await client.waitFor(/^1AAA99: frames are arriving/);

    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      // As root, and on a machine with no way out: no sandbox, no background traffic.
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    try {
      const page = await browser.newPage({ viewport: { width: 1100, height: 760 } });
      await page.goto(url);
      const img = (id: string) => page.locator(`section.card[data-id="${id}"] img`);

      // The picture: the <img> has decoded a 320x240 frame.
      await page.waitForFunction(() => {
        const el = document.querySelector<HTMLImageElement>('section.card[data-id="1AAA99"] img');
        return el !== null && el.complete && el.naturalWidth === 320 && el.naturalHeight === 240;
      }, undefined, { timeout: 15_000 });

      // It changes: a later screenshot of the picture differs from the first.
      const first = await img('1AAA99').screenshot();
      let changed = false;
      for (let i = 0; i < 50 && !changed; i++) {
        await page.waitForTimeout(100);
        changed = !(await img('1AAA99').screenshot()).equals(first);
      }
      expect(changed).toBe(true);

      // The figures move by themselves (server-sent events).
      const figures = page.locator('section.card[data-id="1AAA99"] .figures');
      await expect.poll(async () => /frames (\d+) complete/.exec(await figures.textContent() ?? '')?.[1] ?? '', { timeout: 10_000 }).toMatch(/^\d+$/);
      const before = Number(/frames (\d+) complete/.exec(await figures.textContent() ?? '')![1]);
      await expect.poll(async () => Number(/frames (\d+) complete/.exec(await figures.textContent() ?? '')?.[1] ?? 0), { timeout: 10_000 }).toBeGreaterThan(before);

      // The broker's other producers are offered on the page; a second one, subscribed from the
      // page, appears beside the first.
      await expect.poll(async () => (await page.locator('#producers button').allTextContents()).join(' | '), { timeout: 10_000 }).toMatch(/2BBB88 Colour bars.*3CCC77 Night shift/);
      await page.fill('#id', '2bbb88');
      await page.click('#subscribe button');
      await page.waitForFunction(() => {
        const el = document.querySelector<HTMLImageElement>('section.card[data-id="2BBB88"] img');
        return el !== null && el.complete && el.naturalWidth === 320;
      }, undefined, { timeout: 15_000 });
      await client.waitFor(/^2BBB88: frames are arriving/);

      // Glass to glass: how long after the producer sent a frame the page had it decoded.
      await page.waitForFunction(() => (window as unknown as { framecastDelays: () => Record<string, { delays: number[] }> }).framecastDelays()['1AAA99']?.delays.length >= 120, undefined, { timeout: 30_000 });
      const delays = (await page.evaluate(() => (window as unknown as { framecastDelays: () => Record<string, { delays: number[] }> }).framecastDelays()['1AAA99'].delays)).sort((a, b) => a - b);
      const at = (p: number) => delays[Math.min(delays.length - 1, Math.floor(p * delays.length))];
      process.stdout.write(`figure: glass-to-glass in chromium on this machine over ${delays.length} frames: median ${at(0.5).toFixed(1)} ms, p99 ${at(0.99).toFixed(1)} ms\n`);
      expect(delays.every((d) => Number.isFinite(d))).toBe(true);
      await page.waitForTimeout(1200); // one more round of figures, so the screenshot shows the delay line
      if (process.env.FRAMECAST_SCREENSHOT) await page.screenshot({ path: process.env.FRAMECAST_SCREENSHOT });

      // Unsubscribing from the page: the card goes, and so does the subscription at the client.
      await page.click('section.card[data-id="2BBB88"] button');
      await page.waitForSelector('section.card[data-id="2BBB88"]', { state: 'detached', timeout: 10_000 });
      client.write('stats');
      await client.waitForNext(/^client: /);
      expect(client.stdoutLines.some((l) => l.startsWith('2BBB88: '))).toBe(true); // it was there before
      const statsAfter = client.stdoutLines.slice(client.stdoutLines.findLastIndex((l) => l.startsWith('1AAA99: ')));
      expect(statsAfter.some((l) => l.startsWith('2BBB88: '))).toBe(false);

      // Closing the tab frees its streams at the client.
      await page.close();
      await expect.poll(async () => ((await (await fetch(`${url}api/stats`)).json()) as { view: { viewers: number } }).view.viewers, { timeout: 10_000 }).toBe(0);
    } finally {
      await browser.close();
    }
  });
});
