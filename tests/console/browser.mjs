// The console's browser checks, run by tests/tests/console_browser.rs with the addresses,
// login links and items in JIANCHA_CONSOLE_TEST. Debian's chromium, driven by
// playwright-core; no browser is downloaded. Every page is photographed into the
// screenshots folder. Exits non-zero at the first failed check.
import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';

const S = JSON.parse(process.env.JIANCHA_CONSOLE_TEST);
const consoleOrigin = new URL(S.console).origin;
const idpOrigin = new URL(S.issuer).origin;
const offHost = [];
const contexts = [];

// On a failure: every open page's address and text, and a screenshot of each.
process.on('uncaughtException', async (err) => {
  console.error(err);
  let n = 0;
  for (const ctx of contexts) {
    for (const page of ctx.pages()) {
      n += 1;
      try {
        console.error(`--- page ${n}: ${page.url()}`);
        console.error((await page.locator('main').textContent({ timeout: 2000 })).slice(0, 1500));
        await page.screenshot({ path: `${S.screenshots}/failure-${n}.png`, fullPage: true });
      } catch (e) { console.error(`(no text: ${e.message})`); }
    }
  }
  process.exit(1);
});

const browser = await chromium.launch({
  executablePath: S.chromium,
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
    '--disable-sync', '--no-first-run'],
});

function step(name) { console.log(`- ${name}`); }

async function context(allowed = [consoleOrigin]) {
  const ctx = await browser.newContext({ locale: 'zh-CN', viewport: { width: 1366, height: 900 }, timezoneId: 'Asia/Shanghai' });
  // Every request a console page makes must stay on the console's origin. The identity
  // provider's own login page (oidc-provider's development pages load a web font) is not
  // the console's: its requests to other hosts are cut off here and not counted.
  await ctx.route('**/*', (route) => {
    const u = new URL(route.request().url());
    if (u.protocol === 'data:' || u.protocol === 'blob:' || allowed.includes(u.origin)) return route.continue();
    let from = '';
    try { from = new URL(route.request().frame().url()).origin; } catch (e) { from = ''; }
    if (from !== idpOrigin) offHost.push(`${route.request().url()} (from ${from || 'unknown'})`);
    return route.abort();
  });
  ctx.setDefaultTimeout(30000);
  contexts.push(ctx);
  return ctx;
}

async function shot(page, name) {
  await page.screenshot({ path: `${S.screenshots}/${name}.png`, fullPage: true });
}

async function login(link) {
  const ctx = await context();
  const page = await ctx.newPage();
  await page.goto(link);
  // The start page: the live board, or the catalog for operators (they see no alerts).
  await page.waitForURL((u) => u.origin === consoleOrigin && (u.pathname === '/' || u.pathname === '/catalog'));
  return { ctx, page };
}

async function until(what, fn, seconds = 60) {
  const end = Date.now() + seconds * 1000;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 1000));
  }
}

// 1. Inspector: the live board shows an alert raised by an event produced while it is open.
step('inspector logs in with a one-time link and watches the live board');
const insp = await login(S.links.inspector);
const board = insp.page;
await board.waitForSelector('#board[data-ready="1"]');
await board.waitForFunction(() => document.getElementById('live-status').textContent.includes('实时'));
assert.equal(await board.locator('#board .card', { hasText: S.live_item }).count(), 0, 'the live item is not there before it is produced');
execFileSync(S.produce[0], S.produce.slice(1), { stdio: 'inherit' });
const liveCard = board.locator('#board .card', { hasText: S.live_item }).filter({ hasText: '红牌' }).first();
await liveCard.waitFor({ timeout: 90000 });
assert.match(await liveCard.locator('.badge').first().textContent(), /红牌/, 'cards say their level in words');
await liveCard.locator('summary').click();
assert.match(await liveCard.locator('.derivation').textContent(), /法定时限|工作日/, 'the derivation is one click away');
await board.locator('#board .card', { hasText: S.other_item }).first().waitFor({ timeout: 60000 });
await shot(board, '01-live-board');

// 2. Items.
step('inspector lists overdue items and opens one on its working-day axis');
const items = await insp.ctx.newPage();
await items.goto(`${S.console}/items?overdue=yes&department=SCJG`);
step('keyboard: the first Tab reaches the skip link');
await items.keyboard.press('Tab');
assert.equal(await items.evaluate(() => document.activeElement.className), 'skip');
await items.locator('table.list a', { hasText: S.live_item }).click();
await items.waitForSelector('svg.axis');
assert.ok(await items.locator('section.clock').count() >= 2, 'every clock is listed');
assert.match(await items.locator('main').textContent(), /法定办结时限|法定时限/);
assert.ok(await items.locator('svg.axis rect.d-rest').count() > 0, 'rest days are drawn');
await shot(items, '02-item');
await items.goto(`${S.console}/items?q=${encodeURIComponent(S.public_item)}`);
await items.waitForURL(/\/items\/_\//);
assert.match(await items.locator('h1').textContent(), new RegExp(S.public_item));
await items.goto(`${S.console}/items`);
await shot(items, '03-items');

// 3. Cases: resolve through the pages, then the audit log shows it.
step('inspector resolves the live item\'s case through the pages');
const cases = await insp.ctx.newPage();
const caseRow = await until('the case of the live item', async () => {
  await cases.goto(`${S.console}/cases?department=SCJG`);
  const row = cases.locator('table.list tr', { hasText: S.live_item }).filter({ hasText: '红牌' });
  return (await row.count()) > 0 ? row.first() : null;
}, 90);
await shot(cases, '04-cases');
await caseRow.locator('a').first().click();
await cases.waitForSelector('section.actions');
const caseUrl = cases.url();
await cases.fill('input[name=inspector]', 'local-inspector');
await cases.click('form[action$="/assign"] button');
await cases.waitForURL(caseUrl);
assert.match(await cases.locator('dl.facts').textContent(), /local-inspector/);
await cases.fill('form[action$="/comment"] textarea', '请说明逾期原因');
const evidence = Buffer.from('逾期情况说明 / evidence');
await cases.setInputFiles('input.attach', { name: '情况说明.pdf', mimeType: 'application/pdf', buffer: evidence });
await cases.waitForFunction(() => document.querySelector('input[name=attachments]').value !== '[]');
await cases.click('form[action$="/comment"] button');
const comment = cases.locator('article.comment', { hasText: '请说明逾期原因' });
await comment.waitFor();
const sha = createHash('sha256').update(evidence).digest('hex');
assert.match(await comment.textContent(), /情况说明\.pdf/, 'the attachment is listed');
assert.match(await comment.textContent(), new RegExp(sha.slice(0, 16)), 'with the SHA-256 computed in the browser');
await shot(cases, '05-case');
await cases.selectOption('select[name=disposition]', 'EFFICIENCY_WARNING');
await cases.fill('form[action$="/resolve"] textarea[name=reason]', '超过法定时限未作决定');
await cases.fill('input[name=responsible]', '王伟');
await cases.click('form[action$="/resolve"] button');
await cases.locator('section.resolution', { hasText: '效能告诫' }).waitFor();
assert.match(await cases.locator('section.resolution').textContent(), /王伟/);
assert.equal(await cases.locator('section.actions').count(), 0, 'a resolved case offers no more actions');
await shot(cases, '06-case-resolved');
const caseId = caseUrl.split('/').pop();

const otherCaseUrl = await until('the other department\'s case', async () => {
  await cases.goto(`${S.console}/cases?department=ZRZY`);
  const link = cases.locator('table.list tr', { hasText: S.other_item }).locator('a').first();
  return (await link.count()) > 0 ? new URL(await link.getAttribute('href'), S.console).href : null;
}, 90);

step('the audit log shows the resolution, and the chain verifies');
const audit = await insp.ctx.newPage();
await audit.goto(`${S.console}/audit?case=${caseId}`);
const resolveRow = audit.locator('table.audit tr', { hasText: '处理' }).filter({ hasText: 'local-inspector' });
assert.ok(await resolveRow.count() >= 1, 'RESOLVE by the inspector is in the audit log');
await audit.click('button[name=verify]');
await audit.locator('#audit-head').waitFor();
assert.match(await audit.locator('#audit-head').textContent(), /^\d+:[0-9a-f]{64}$/);
await shot(audit, '07-audit');

step('performance: ranking, charts, CSV, print layout');
const stats = await insp.ctx.newPage();
await stats.goto(`${S.console}/stats`);
assert.equal(await stats.locator('svg.chart').count(), 2, 'score bars and the 12-month trend');
assert.equal(await stats.locator('section.published h2').count(), 1, 'the published reports are listed (or said to be none)');
await shot(stats, '08-stats');
const csv = await stats.request.get(`${S.console}/stats.csv`);
assert.equal(csv.status(), 200);
assert.match(csv.headers()['content-type'], /text\/csv/);
assert.match(await csv.text(), /排名,代码,名称/);
await stats.emulateMedia({ media: 'print' });
assert.equal(await stats.locator('header.top').isVisible(), false, 'the print layout drops the navigation');
await stats.emulateMedia({ media: 'screen' });

step('English switch');
await stats.click('a.lang');
await stats.waitForURL(/\/stats/);
assert.match(await stats.locator('nav').textContent(), /Live board/);
await stats.click('a.lang');
await stats.waitForURL(/\/stats/);
assert.match(await stats.locator('nav').textContent(), /实时监控/);

step('a change without the form\'s CSRF token is refused');
const forged = await insp.page.request.post(`${S.console}/cases/${caseId}/comment`, { form: { csrf: 'forged', text: 'x' } });
assert.equal(forged.status(), 403);

// 4. A department sees only its own department, also by URL.
step('department SCJG sees only its own items, cases and alerts, also by typing URLs');
const dept = await login(S.links.department);
await dept.page.waitForSelector('#board[data-ready="1"]');
await dept.page.locator('#board .card', { hasText: S.live_item }).first().waitFor({ timeout: 60000 });
await dept.page.waitForTimeout(1500);
const depts = await dept.page.locator('#board .card .dept').allTextContents();
assert.ok(depts.length > 0 && depts.every((d) => d.startsWith('SCJG')), `only SCJG cards: ${depts}`);
assert.equal(await dept.page.locator('#board .card', { hasText: S.other_item }).count(), 0);
await shot(dept.page, '09-board-department');
const dp = await dept.ctx.newPage();
await dp.goto(`${S.console}/items?department=ZRZY`);
const deptCells = await dp.locator('table.list tbody tr td:nth-child(2)').allTextContents();
assert.ok(deptCells.every((d) => d === 'SCJG'), `only SCJG items: ${deptCells}`);
for (const url of [`/items/ZRZY/${S.other_item}`, `/items/_/${S.other_item}`, `/items/SCJG/${S.other_item}`]) {
  const r = await dp.goto(`${S.console}${url}`);
  assert.equal(r.status(), 404, url);
  assert.match(await dp.locator('main').textContent(), /未找到或无权查看/);
  assert.doesNotMatch(await dp.content(), /ZRZY-001|建设用地/, 'nothing of the other item leaks');
}
let r = await dp.goto(otherCaseUrl);
assert.equal(r.status(), 404, 'another department\'s case by URL');
await dp.goto(`${S.console}/cases?department=ZRZY`);
assert.equal(await dp.locator('table.list tr', { hasText: S.other_item }).count(), 0);
r = await dp.goto(`${S.console}/audit`);
assert.equal(r.status(), 404, 'departments have no audit page');
r = await dp.goto(`${S.console}/live/events?department=ZRZY`, { timeout: 5000 }).catch(() => null);
await shot(dp, '10-department-denied');

step('a complaint by phone: filed and accepted by the inspector, answered by the department (who never sees the complainant), sent back for more');
const cp = await insp.ctx.newPage();
await cp.goto(`${S.console}/cases`);
await cp.click('details.new-case summary');
await cp.selectOption('details.new-case select[name=kind]', 'COMPLAINT');
await cp.fill('details.new-case input[name=department]', 'SCJG');
await cp.fill('details.new-case textarea[name=text]', '窗口要求提供法规未规定的证明材料');
await cp.selectOption('details.new-case select[name=channel]', 'HOTLINE');
await cp.fill('details.new-case input[name=complainant]', '赵女士 13800000000');
await cp.click('details.new-case button[type=submit]');
await cp.waitForURL(/\/cases\/\d+$/);
const complaintUrl = cp.url();
assert.match(await cp.locator('dl.facts').textContent(), /赵女士 13800000000/, 'the inspector sees the complainant');
assert.match(await cp.locator('p.badges').textContent(), /投诉待受理/);
await shot(cp, '06a-complaint-filed');
await cp.click('form[action$="/accept"] button');
await cp.waitForURL(complaintUrl);
assert.match(await cp.locator('p.badges').textContent(), /待说明/);
assert.match(await cp.locator('dd.chain').textContent(), /催办.*督办.*通报/, 'the escalation chain\'s instants are shown');
await dp.goto(complaintUrl);
assert.doesNotMatch(await dp.content(), /13800000000/, 'a department never sees the complainant');
await dp.fill('form[action$="/reply"] textarea', '已核实，向申请人致歉');
await dp.click('form[action$="/reply"] button');
await dp.waitForURL(complaintUrl);
await cp.reload();
await cp.fill('form[action$="/send_back"] textarea', '请说明整改措施');
await cp.click('form[action$="/send_back"] button');
await cp.waitForURL(complaintUrl);
assert.match(await cp.locator('p.sent-back').textContent(), /请说明整改措施/);
assert.match(await cp.locator('p.badges').textContent(), /待说明/, 'sent back: the department owes an answer again');
await shot(cp, '06b-complaint-sent-back');

// 5. Auditor reads, never acts.
step('auditor reads cases and the audit log but has no actions');
const aud = await login(S.links.auditor);
await aud.page.goto(`${S.console}/cases/${caseId}`);
assert.equal(await aud.page.locator('section.actions').count(), 0);
assert.ok(await aud.page.locator('table.audit').count() === 1, 'the auditor sees the case\'s audit trail');

// 6. Operator: catalog editing with errors at the line, preview.
step('operator previews a catalog change and sees an invalid one refused at its line');
const op = await login(S.links.operator);
assert.equal(new URL(op.page.url()).pathname, '/catalog', 'an operator starts on the catalog');
assert.doesNotMatch(await op.page.locator('nav').textContent(), /实时监控|问责/, 'an operator has no alert or case pages');
const editor = op.page.locator('form.editor').first();
const original = await editor.locator('textarea').inputValue();
await editor.locator('textarea').fill(original.replace('statutory_days = 20', 'statutory_days = "twenty"'));
await editor.locator('button[value=preview]').click();
await op.page.locator('.notice.error').waitFor();
assert.match(await op.page.locator('pre.excerpt .bad').first().textContent(), /statutory_days = "twenty"/, 'the line at fault is shown, marked');
assert.match(await op.page.locator('.notice.error').textContent(), /line \d+/, 'the error names the line');
await shot(op.page, '11-catalog-error');
await op.page.locator('form.editor').first().locator('textarea').fill(original.replace('statutory_days = 20\npromised_days = 10', 'statutory_days = 30\npromised_days = 10'));
await op.page.locator('form.editor').first().locator('button[value=preview]').click();
await op.page.locator('.notice.info').waitFor();
assert.match(await op.page.locator('.notice.info').textContent(), /变更预览/);
await shot(op.page, '12-catalog-preview');

// 7. The public progress page.
step('the public page shows the item with its query code, and nothing without it');
const pub = await context();
const pp = await pub.newPage();
await pp.goto(`${S.console}/progress`);
await pp.fill('input[name=item]', S.public_item);
await pp.fill('input[name=code]', S.query_code.toLowerCase());
await pp.click('button[type=submit]');
await pp.locator('#progress').waitFor();
assert.match(await pp.locator('#progress').textContent(), /已受理/);
assert.doesNotMatch(await pp.content(), /王芳/, 'no official\'s name on the public page');
await shot(pp, '13-progress');
await pp.goto(`${S.console}/progress`);
await pp.fill('input[name=item]', S.public_item);
await pp.fill('input[name=code]', 'AAAAAAAAAA');
await pp.click('button[type=submit]');
await pp.locator('.notice.error').waitFor();
assert.equal(await pp.locator('#progress').count(), 0);
r = await pp.goto(`${S.console}/items`);
assert.match(pp.url(), /\/login/, 'pages behind login send the anonymous to the login page');

step('a login link works once');
const again = await context();
const ap = await again.newPage();
await ap.goto(S.links.inspector);
assert.match(await ap.locator('main').textContent(), /已使用过/);

// 8. OpenID Connect.
step('an inspector logs in through the OpenID Connect provider');
const oidc = await context([consoleOrigin, idpOrigin]);
const op2 = await oidc.newPage();
await op2.goto(`${S.console}/login`);
await op2.click('a[href^="/auth/oidc/start"]');
await op2.waitForURL((u) => u.origin === idpOrigin);
await op2.fill('input[name=login]', 'inspector-wang');
await op2.fill('input[name=password]', 'any');
await op2.click('button[type=submit]');
await op2.waitForURL((u) => u.origin === consoleOrigin || /consent|interaction/.test(u.pathname));
if (new URL(op2.url()).origin === idpOrigin) await op2.click('button[type=submit]');
await op2.waitForURL(`${S.console}/`);
assert.match(await op2.locator('.who').textContent(), /inspector-wang.*纪检监察/);
await shot(op2, '14-oidc-logged-in');

step('an account without a jiancha role is refused');
const nobody = await context([consoleOrigin, idpOrigin]);
const np = await nobody.newPage();
await np.goto(`${S.console}/auth/oidc/start`);
await np.waitForURL((u) => u.origin === idpOrigin);
await np.fill('input[name=login]', 'nobody-x');
await np.fill('input[name=password]', 'any');
await np.click('button[type=submit]');
await np.waitForURL((u) => u.origin === consoleOrigin || /consent|interaction/.test(u.pathname));
if (new URL(np.url()).origin === idpOrigin) await np.click('button[type=submit]');
await np.waitForURL(/\/auth\/oidc\/callback/);
assert.match(await np.locator('main').textContent(), /登录失败/);

step('logout ends the session');
await op2.click('header form[action="/logout"] button');
await op2.waitForURL(/\/login/);
await op2.goto(`${S.console}/cases`);
assert.match(op2.url(), /\/login/);

assert.deepEqual(offHost, [], 'no request left the host');
await browser.close();
console.log('all console checks passed');
