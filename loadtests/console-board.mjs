// The live board under 1,000 alerts a minute: logs in, opens the board, then each minute
// publishes 1,000 late-reported applications (each raises one LATE_REPORT warning at
// once), and records how long the board took to show them and its memory (JS heap, DOM
// nodes, cards). Run by run-console.sh:
//   node loadtests/console-board.mjs LOGIN_LINK MINUTES JIANCHA_BINARY KAFKA_BOOTSTRAP
import { chromium } from '../tests/console/node_modules/playwright-core/index.mjs';
import { execFileSync } from 'node:child_process';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [link, minutesArg, jiancha, bootstrap] = process.argv.slice(2);
const minutes = Number(minutesArg || 10);
const PER_MINUTE = 1000;
const dir = mkdtempSync(join(tmpdir(), 'jiancha-board-'));
const base = new URL(link).origin;
const browser = await chromium.launch({
  executablePath: process.env.JIANCHA_CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--enable-precise-memory-info', '--js-flags=--expose-gc'],
});
const page = await (await browser.newContext({ locale: 'zh-CN' })).newPage();
await page.goto(link);
await page.waitForURL(`${base}/`);
await page.waitForSelector('#board[data-ready="1"]');
const received = async () => Number(((await page.locator('#live-status').textContent()).match(/(\d+)\s*$/) || [0, 0])[1]);
// Let the backlog arrive first.
let before = -1;
for (;;) {
  await page.waitForTimeout(3000);
  const n = await received();
  if (n === before) break;
  before = n;
}
const sample = () => page.evaluate(() => {
  if (window.gc) window.gc();
  return {
    heap: performance.memory ? performance.memory.usedJSHeapSize : 0,
    nodes: document.getElementsByTagName('*').length,
    cards: document.querySelectorAll('#board .card').length,
  };
});
const fmt = (b) => (b / 1048576).toFixed(1);
console.log(`backlog: ${before} updates; then ${PER_MINUTE} alerts a minute for ${minutes} minutes`);
console.log('minute  shown-after-s  updates  heap-MiB  dom-nodes  cards');
const s0 = await sample();
console.log(`     0              -  ${String(before).padStart(7)}  ${fmt(s0.heap).padStart(8)}  ${String(s0.nodes).padStart(9)}  ${String(s0.cards).padStart(5)}`);
const day = (d) => d.toISOString();
for (let m = 1; m <= minutes; m++) {
  const started = Date.now();
  const now = new Date();
  const occurred = new Date(now.getTime() - 3 * 86400000);
  const lines = [];
  for (let i = 0; i < PER_MINUTE; i++) {
    const item = `SCJG-SOAK-${m}-${i}`;
    lines.push(JSON.stringify({ event_id: `${item}-01`, item_id: item, service_code: 'SCJG-001', department_code: 'SCJG', type: 'SUBMITTED',
      occurred_at: day(occurred), received_at: day(now) }));
  }
  const file = join(dir, `m${m}.jsonl`);
  writeFileSync(file, lines.join('\n') + '\n');
  const want = (await received()) + PER_MINUTE;
  execFileSync(jiancha, ['produce', '--kafka-bootstrap', bootstrap, '--file', file], { stdio: 'ignore' });
  let shown = NaN;
  while (Date.now() - started < 60000) {
    if ((await received()) >= want) { shown = (Date.now() - started) / 1000; break; }
    await page.waitForTimeout(200);
  }
  const s = await sample();
  console.log(`${String(m).padStart(6)}  ${(Number.isNaN(shown) ? '>60' : shown.toFixed(1)).padStart(13)}  ${String(await received()).padStart(7)}  ${fmt(s.heap).padStart(8)}  ${String(s.nodes).padStart(9)}  ${String(s.cards).padStart(5)}`);
  const wait = 60000 - (Date.now() - started);
  if (wait > 0) await page.waitForTimeout(wait);
}
await browser.close();
