// How long the log explorer's first screen takes in chromium: from navigating to the
// page until the histogram's total, the first 100 logs and the fields are all shown (and,
// reported apart, the bars split by level). Each run shifts the range by a second, so
// that no run is answered from an earlier run's finished query.
//
//   SLUICE_URL=http://127.0.0.1:8080 node tests/browser/first-screen.mjs PROJECT LOGSTORE FROM TO [RUNS]
//
// FROM and TO are seconds; README's figure is the last 24 hours of the query bench's 10M
// table (project bench, logstore app), served by a release `sluice serve`. Signs in with
// the demo SLS key unless SLUICE_SLS_ID/SLUICE_SLS_SECRET say otherwise.

import { chromium } from "playwright-core";

const url = process.env.SLUICE_URL ?? "http://127.0.0.1:8080";
const [project, logstore, from, to, runs = "7"] = process.argv.slice(2);
if (!to) {
  console.error("usage: first-screen.mjs PROJECT LOGSTORE FROM TO [RUNS]");
  process.exit(2);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
const page = await (await browser.newContext({ viewport: { width: 1400, height: 900 } })).newPage();
await page.goto(url);
await page.waitForSelector("#signin:not([hidden])");
await page.fill("#signin-id", process.env.SLUICE_SLS_ID ?? "sluice-demo");
await page.fill("#signin-secret", process.env.SLUICE_SLS_SECRET ?? "sluice-demo-secret");
await page.click("#signin-submit");
await page.waitForSelector("#explorer:not([hidden])");

const screens = [];
const withLevels = [];
for (let i = 0; i < Number(runs); i++) {
  const [f, t] = [Number(from) - i, Number(to) - i];
  const started = Date.now();
  await page.goto(`${url}/?project=${project}&logstore=${logstore}&range=abs&from=${f}&to=${t}`);
  await page.waitForFunction(
    () =>
      document.getElementById("progress")?.dataset.progress === "Complete" &&
      document.querySelectorAll("#logs li.log").length >= 100 &&
      document.getElementById("fields")?.dataset.ready !== undefined,
    undefined,
    { timeout: 60000, polling: 5 },
  );
  const screen = Date.now() - started;
  await page.waitForFunction(() => document.getElementById("histogram")?.dataset.stacks !== undefined, undefined, {
    timeout: 60000,
    polling: 5,
  });
  const levels = Date.now() - started;
  const total = await page.getAttribute("#total", "data-total");
  console.log(`run ${i + 1}: ${total} logs; first screen ${screen} ms, bars by level ${levels} ms`);
  screens.push(screen);
  withLevels.push(levels);
}
await browser.close();
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log(`median: first screen ${median(screens)} ms, bars by level ${median(withLevels)} ms (${runs} runs)`);
