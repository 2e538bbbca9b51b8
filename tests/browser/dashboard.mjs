// Drives the asgd dashboard in the system's headless Chromium with playwright-core.
// Env: ASGD_URL (http://127.0.0.1:PORT), ASGD_TOKEN, ASGD_GROUP, ASGD_SCREENSHOT (png path),
// ASGD_PROFILE (fresh user-data-dir). Prints one line per check; exits non-zero on failure.
import { launch } from './chromium.mjs';

const url = process.env.ASGD_URL;
const token = process.env.ASGD_TOKEN;
const group = process.env.ASGD_GROUP;
const shot = process.env.ASGD_SCREENSHOT;
const profile = process.env.ASGD_PROFILE;

function check(cond, what) {
  if (!cond) throw new Error('check failed: ' + what);
  console.log('ok: ' + what);
}

async function api(path) {
  const r = await fetch(url + path);
  return r.json();
}

const ctx = await launch(profile);
let failed = false;
try {
  const page = ctx.pages()[0] || await ctx.newPage();
  const foreign = [];
  const errors = [];
  page.on('request', (req) => {
    const u = req.url();
    if (!u.startsWith(url) && !u.startsWith('data:')) foreign.push(u);
  });
  page.on('pageerror', (e) => errors.push(String(e)));
  // expected 401/400 answers are logged by Chromium as failed resources: not script errors
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) errors.push(m.text());
  });

  await page.goto(url + '/', { waitUntil: 'load' });
  await page.waitForFunction((g) => document.querySelector('#group-name').textContent === g, group,
                             { timeout: 15000 });
  check(true, 'dashboard loads and names the group');

  // the instances of the group appear in the table
  const before = await api('/api/v1/instances');
  await page.waitForFunction((n) => document.querySelectorAll('#instances tbody tr').length === n,
                             before.length, { timeout: 15000 });
  const firstId = await page.textContent('#instances tbody tr td');
  check(before.some((i) => i.id === firstId), `instance table shows ${before.length} instance(s), e.g. ${firstId}`);
  check((await page.inputValue('#min_size')) === '1', 'form shows min_size 1');

  // without the token a change is refused and the message is shown
  await page.fill('#min_size', '2');
  await page.click('#apply');
  await page.waitForFunction(() => document.querySelector('#form-msg').classList.contains('error'));
  check(/authoriz|token/i.test(await page.textContent('#form-msg')), 'without token: ' + await page.textContent('#form-msg'));

  // with the token: min 2 is saved, the group changes
  await page.fill('#token', token);
  await page.click('#token-save');
  await page.click('#apply');
  await page.waitForFunction(() => document.querySelector('#form-msg').classList.contains('ok'),
                             null, { timeout: 10000 });
  const g1 = await api('/api/v1/group');
  check(g1.min_size === 2 && g1.desired_capacity >= 2, `API shows min_size ${g1.min_size}, desired ${g1.desired_capacity}`);

  // validation message from the API's 400, and the field is marked
  await page.fill('#min_size', '9');
  await page.click('#apply');
  await page.waitForFunction(() => document.querySelector('#form-msg').classList.contains('error'));
  const msg = await page.textContent('#form-msg');
  check(msg.includes('min_size 9 > max_size'), 'validation message shown: ' + msg);
  check(await page.$eval('#min_size', (e) => e.classList.contains('invalid')), 'min_size field marked invalid');
  check((await api('/api/v1/group')).min_size === 2, 'invalid change not applied');
  await page.click('#revert');

  // a policy parameter through the form
  await page.fill('[id="policy.up_threshold"]', '85');
  await page.click('#apply');
  await page.waitForFunction(() => document.querySelector('#form-msg').classList.contains('ok'));
  check((await api('/api/v1/group')).policy.up_threshold === 85, 'policy up_threshold 85 saved');

  // live updates without reload: the second instance shows up in the table
  await page.waitForFunction(() => document.querySelectorAll('#instances tbody tr').length === 2,
                             null, { timeout: 30000 });
  check(true, 'table grew to 2 instances without a reload');
  await page.waitForFunction(
    () => Array.from(document.querySelectorAll('#instances tbody tr td:nth-child(4)')).every((td) => td.textContent === 'healthy'),
    null, { timeout: 30000 });
  check(true, 'both instances healthy in the table');
  await page.waitForFunction(() => document.querySelectorAll('#activities tbody tr').length >= 2);
  const acts = await page.$$eval('#activities tbody tr td.cause', (tds) => tds.map((t) => t.textContent));
  check(acts.some((c) => c.includes('min_size 1 -> 2')), 'activity log shows the settings change with its cause');
  check(/%/.test(await page.textContent('#gauge-text')), 'gauge shows the average load: ' + await page.textContent('#gauge-text'));
  await page.waitForTimeout(4500); // a few polls for the charts
  const legend = await page.textContent('#load-legend');
  check(legend.includes('average'), 'load chart legend: ' + legend);
  await page.screenshot({ path: shot, fullPage: true });
  check(true, 'screenshot saved to ' + shot);

  // one group, one node: the picker names it, the URL can too, no cluster panel
  check((await page.inputValue('#group-pick')) === group, 'group picker shows ' + group);
  check(await page.$eval('#cluster', (e) => e.classList.contains('hidden')), 'no cluster panel on a single node');
  await page.goto(url + '/#group=' + encodeURIComponent(group), { waitUntil: 'load' });
  await page.waitForFunction((g) => document.querySelector('#group-name').textContent === g, group);
  check(true, '#group=' + group + ' opens the group');

  // many groups, two nodes (the stand-in API, see test_dashboard.py)
  const stub = process.env.ASGD_STUB_URL;
  if (stub) {
    const page2 = await ctx.newPage();
    page2.on('pageerror', (e) => errors.push(String(e)));
    page2.on('request', (req) => {
      const u = req.url();
      if (!u.startsWith(stub) && !u.startsWith('data:')) foreign.push(u);
    });
    await page2.goto(stub + '/#group=api', { waitUntil: 'load' });
    await page2.waitForFunction(() => document.querySelector('#group-name').textContent === 'api',
                                null, { timeout: 15000 });
    check(true, '#group=api opens group api');
    const opts = await page2.$$eval('#group-pick option', (os) => os.map((o) => o.value));
    check(opts.join(',') === 'web,api', 'picker lists the groups: ' + opts.join(','));
    await page2.waitForFunction(() => document.querySelector('#instances tbody tr td')?.textContent === 'api-0');
    check(true, 'instances of api shown');
    check(/not reachable/.test(await page2.textContent('#owner')), 'group api marked not live: ' + await page2.textContent('#owner'));
    await page2.waitForFunction(() => !document.querySelector('#cluster').classList.contains('hidden'));
    const rows = await page2.$$eval('#cluster-nodes tbody tr', (trs) => trs.map((t) => t.textContent));
    check(rows.length === 2 && rows[0].includes('node-a') && rows[1].includes('lost') && rows[1].includes('api'),
          'cluster panel: ' + rows.join(' | '));
    await page2.selectOption('#group-pick', 'web');
    await page2.waitForFunction(() => document.querySelector('#group-name').textContent === 'web');
    await page2.waitForFunction(() => document.querySelector('#instances tbody tr td')?.textContent === 'web-0');
    check(page2.url().endsWith('#group=web'), 'the URL keeps the choice: ' + page2.url());
    check(!/not reachable/.test(await page2.textContent('#owner')), 'group web is live');
    // a link in the cluster panel switches too
    await page2.click('#cluster-nodes a[href="#group=api"]');
    await page2.waitForFunction(() => document.querySelector('#group-name').textContent === 'api');
    check(true, 'cluster panel link opens group api');
    await page2.close();
  }
  check(foreign.length === 0, 'no request left asgd (' + foreign.join(', ') + ')');
  check(errors.length === 0, 'no script errors (' + errors.join('; ') + ')');
} catch (e) {
  failed = true;
  console.error(String(e && e.stack || e));
} finally {
  await ctx.close();
}
process.exit(failed ? 1 : 0);
