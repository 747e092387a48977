// Photographs the console's pages for the docs: `node screenshots.mjs LOGIN_LINK OUT_DIR`
// against a running `jiancha up` (its simulator gives every page something to show).
import { chromium } from 'playwright-core';

const [link, out] = process.argv.slice(2);
if (!link || !out) {
  console.error('usage: node screenshots.mjs LOGIN_LINK OUT_DIR');
  process.exit(2);
}
const base = new URL(link).origin;
const browser = await chromium.launch({ executablePath: process.env.JIANCHA_CHROMIUM || '/usr/bin/chromium', args: ['--no-sandbox', '--disable-gpu'] });
const ctx = await browser.newContext({ locale: 'zh-CN', viewport: { width: 1366, height: 820 }, timezoneId: 'Asia/Shanghai' });
const page = await ctx.newPage();
await page.goto(link);
await page.waitForURL(`${base}/`);
await page.waitForFunction(() => document.querySelectorAll('#board .card').length > 8, null, { timeout: 60000 });
await page.waitForTimeout(1500);
await page.screenshot({ path: `${out}/board.png` });
await page.goto(`${base}/items?overdue=yes&level=RED`);
const first = page.locator('table.list tbody a').first();
await first.click();
await page.waitForSelector('svg.axis');
await page.screenshot({ path: `${out}/item.png`, fullPage: false });
await page.goto(`${base}/cases?level=RED`);
await page.screenshot({ path: `${out}/cases.png` });
await page.locator('table.list tbody a').first().click();
await page.waitForSelector('main h1');
await page.screenshot({ path: `${out}/case.png` });
const month = new Date().toISOString().slice(0, 7);
await page.goto(`${base}/stats?period=${month}`);
await page.screenshot({ path: `${out}/stats.png`, fullPage: true });
await browser.close();
console.log(`screenshots in ${out}`);
