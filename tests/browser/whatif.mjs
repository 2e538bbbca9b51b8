// The dashboard's "What if" button in headless Chromium (playwright-core): the settings form
// proposes another policy, the button simulates it on the group's recorded load next to the
// current settings (numbers and chart), and nothing is applied.
// Env: ASGD_URL, ASGD_TOKEN, ASGD_GROUP, ASGD_SCREENSHOT, ASGD_PROFILE. Exits non-zero on failure.
import { launch } from './chromium.mjs';

const url = process.env.ASGD_URL;
const token = process.env.ASGD_TOKEN;
const group = process.env.ASGD_GROUP;

function check(cond, what) {
  if (!cond) throw new Error('check failed: ' + what);
  console.log('ok: ' + what);
}

const ctx = await launch(process.env.ASGD_PROFILE, 1400);
let failed = false;
try {
  const page = ctx.pages()[0] || await ctx.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) errors.push(m.text());
  });
  await page.goto(url + '/#group=' + encodeURIComponent(group), { waitUntil: 'load' });
  await page.waitForFunction((g) => document.querySelector('#group-name').textContent === g, group,
                             { timeout: 15000 });
  await page.fill('#token', token);
  await page.click('#token-save');
  check((await page.inputValue('[name="policy.type"]')) === 'threshold', 'current policy threshold');

  await page.selectOption('[name="policy.type"]', 'predictive');
  await page.dispatchEvent('[name="policy.type"]', 'change');
  check(await page.isVisible('[name="policy.lead"]'), 'predictive shows its own fields');
  await page.click('#whatif');
  await page.waitForSelector('#whatif-result:not(.hidden)', { timeout: 20000 });
  const rows = await page.$$eval('#whatif-table tbody tr', (trs) => trs.map((tr) => tr.textContent));
  check(rows.length === 2 && /threshold/.test(rows[0]) && /predictive/.test(rows[1]),
        'two rows: ' + rows.join(' | '));
  check(await page.$$eval('#whatif-chart svg text', (t) => t.length) > 10, 'the chart is drawn');
  const panels = await page.$$eval('#whatif-chart svg text', (t) =>
    t.filter((x) => /cost ratio/.test(x.textContent)).length);
  check(panels === 2, 'one panel per policy');
  check(/nothing applied/.test(await page.textContent('#form-msg')), 'says nothing was applied');
  const g = await (await fetch(url + '/api/v1/groups/' + encodeURIComponent(group))).json();
  check(g.policy.type === 'threshold', 'the group still runs threshold');

  // a bad proposal gets the API's message
  await page.fill('[name="policy.target"]', '500');
  await page.click('#whatif');
  await page.waitForFunction(() => /policy\.target/.test(document.querySelector('#form-msg').textContent),
                             null, { timeout: 10000 });
  check(true, 'bad value: ' + await page.textContent('#form-msg'));
  await page.locator('#whatif-result').screenshot({ path: process.env.ASGD_SCREENSHOT });
  check(errors.length === 0, 'no script errors ' + errors.join('; '));
} catch (e) {
  console.error(String(e));
  failed = true;
} finally {
  await ctx.close();
}
process.exit(failed ? 1 : 0);
