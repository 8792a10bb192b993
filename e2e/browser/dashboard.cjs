// Drives the `remediator serve` page in headless Chromium: starts a
// fan-out from the form, waits for completions to arrive over server-sent
// events, checks the KPIs agree with them, and saves a screenshot; with
// FOLLOW_TRACE set, it then clicks the first row's trace link and reports
// what it opened.
// Usage: node dashboard.cjs URL SCREENSHOT (PLAYWRIGHT_DIR: where
// node_modules/playwright-core is; CHROMIUM: the browser; TRACE_TEMPLATE:
// the trace URL template to start the run with).
'use strict';
const path = require('path');
const { chromium } = require(path.join(process.env.PLAYWRIGHT_DIR, 'node_modules', 'playwright-core'));

const [url, screenshot] = process.argv.slice(2);

async function main() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--no-first-run'],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 1100 } });
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(url);
    await page.waitForSelector('#conn.ok', { timeout: 15000 });
    await page.fill('#start input[name=incidents]', '12');
    await page.fill('#start input[name=concurrency]', '3');
    await page.fill('#start input[name=trace_url_template]', process.env.TRACE_TEMPLATE || 'http://traces.local/?key={trace_key}');
    await page.click('#start-btn');
    await page.waitForSelector('#message.ok', { timeout: 15000 });
    // Completions arrive over SSE: rows appear without a reload.
    await page.waitForFunction(() => document.querySelectorAll('#recent tr.completion').length >= 3, null, { timeout: 120000 });
    // The run finishes: the KPIs say 12 completed.
    await page.waitForFunction(() => {
      const kpi = document.querySelector('[data-kpi="completed"] b');
      return kpi && kpi.textContent === '12';
    }, null, { timeout: 120000 });
    // The run's last log lines follow its last completion in a later event.
    await page.waitForFunction(() => document.querySelector('#log').textContent.includes('finished'), null, { timeout: 30000 });
    const rows = await page.$$eval('#recent tr.completion', (trs) => trs.map((tr) => ({
      incident: tr.children[0].textContent,
      status: tr.children[2].textContent,
      link: tr.querySelector('a') && tr.querySelector('a').href,
    })));
    const fixed = await page.textContent('[data-kpi="fixed"] b');
    const log = await page.textContent('#log');
    // The scorecard with its plot.
    await page.selectOption('#scorecard-form select[name=split]', 'validation');
    await page.click('#scorecard-btn');
    await page.waitForSelector('#plot:not([hidden])', { timeout: 120000 });
    await page.waitForFunction(() => document.querySelector('#plot').naturalWidth > 0, null, { timeout: 30000 });
    const missing = await page.$$eval('#scorecard td.missing', (tds) => tds.map((td) => td.textContent));
    await page.screenshot({ path: screenshot, fullPage: true });
    const result = { rows: rows.length, statuses: rows.map((r) => r.status), links: rows.map((r) => r.link), fixed, log, missing, errors };
    if (process.env.FOLLOW_TRACE) {
      result.followed = await followFirstLink(page);
    }
    console.log(JSON.stringify(result));
  } finally {
    await browser.close();
  }
}

// Clicks the first completion's link, as a person would, until what it
// opens holds a whole trace (the last spans may still be on their way).
async function followFirstLink(page) {
  const deadline = Date.now() + 30000;
  for (;;) {
    const incident = await page.textContent('#recent tr.completion td');
    await page.click('#recent tr.completion a');
    await page.waitForLoadState('load');
    const body = await page.evaluate(() => document.body.innerText);
    let whole = false;
    try {
      const trace = JSON.parse(body).data[0];
      whole = trace.spans.some((s) => !s.references || s.references.length === 0);
    } catch (e) { /* not there yet */ }
    if (whole || Date.now() > deadline) return { incident, body };
    await page.goBack();
    await page.waitForSelector('#recent tr.completion a', { timeout: 15000 });
  }
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : String(e));
  process.exit(1);
});
