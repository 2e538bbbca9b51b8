// The system's Chromium (Debian's /usr/bin/chromium), headless, driven by playwright-core from
// this directory's node_modules: one set of flags for the tests and the benchmarks (no
// network of its own beyond the page's, no sandbox as root, no GPU on a server).
import { chromium } from 'playwright-core';

export function launch(profile, height = 1000) {
  return chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1360, height },
  });
}
