// bench/dashboard_load.mjs - the dashboard of a large group timed in headless Chromium.
//
// Used by bench/fleet_ec2 (--browser) against the real asgd holding N instances:
//   load     ms from navigation start until the instance table shows its first page and the
//            group's summary is drawn (the first poll() finished): cold (a fresh browser) and
//            on 5 reloads
//   refresh  ms of one whole poll() cycle as the page's own 2 s timer runs it (the five API
//            calls, then every render and chart), timed by calling the page's poll() itself,
//            REFRESHES times one after the other
// Env: ASGD_URL, ASGD_PROFILE (a fresh user-data-dir), REFRESHES (default 10). playwright-core
// comes from tests/browser/node_modules (installed by make test).
// Prints one JSON line {"load_ms", "refresh_ms": [...], "rows"}; exits non-zero on failure.
import { launch } from '../tests/browser/chromium.mjs';

const url = process.env.ASGD_URL;
const profile = process.env.ASGD_PROFILE;
const refreshes = Number(process.env.REFRESHES || 10);

const ctx = await launch(profile);
let code = 0;
try {
  const page = ctx.pages()[0] || await ctx.newPage();
  await page.goto(url + '/', { waitUntil: 'commit' });
  // the page's own clock when the predicate first holds (not after the round trip back here)
  const drawnAt = async () => (await page.waitForFunction(() =>
    document.querySelectorAll('#instances tbody tr').length > 0 &&
    document.querySelector('#updated').textContent !== '' && performance.now(), null,
  { timeout: 60000, polling: 10 })).jsonValue();
  const coldMs = await drawnAt();
  // an operator opening the dashboard again: the browser already runs (the cold figure also
  // holds the start of Chromium's renderer, whatever the group's size)
  const loads = [];
  for (let i = 0; i < 5; i++) {
    await page.reload({ waitUntil: 'commit' });
    loads.push(await drawnAt());
  }
  const rows = await page.evaluate(() => document.querySelectorAll('#instances tbody tr').length);
  const times = [];
  for (let i = 0; i < refreshes; i++) {
    // poll() is the dashboard's own refresh (a top-level function of app.js)
    times.push(await page.evaluate(async () => {
      const t0 = performance.now();
      await poll();
      return performance.now() - t0;
    }));
  }
  const live = await page.evaluate(() => document.querySelector('#conn').textContent);
  if (live !== 'live') throw new Error('the dashboard says "' + live + '" after refreshing');
  console.log(JSON.stringify({ load_ms: loads, cold_load_ms: coldMs, refresh_ms: times, rows }));
} catch (e) {
  console.error(String(e));
  code = 1;
} finally {
  await ctx.close();
}
process.exit(code);
