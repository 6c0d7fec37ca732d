// The log explorer in a real browser: Debian's chromium, driven by playwright-core,
// against a `sluice serve` whose logs this script sends through the Proliferate batch
// ingest API. Run by tests/tests/explorer.rs, which starts the server, passes its URL and
// credentials in the environment, and checks what this script reports (the last line,
// `RESULT {json}`) against the SLS SDK.
//
//   SLUICE_URL=http://127.0.0.1:PORT node tests/browser/explorer.mjs
//
// Environment: SLUICE_URL; SLUICE_SLS_ID/SLUICE_SLS_SECRET (an SLS key that reads project
// `shop`), SLUICE_SHOP_KEY and SLUICE_BANK_KEY (Proliferate keys of `shop/logs` and
// `bank/logs`); CHROMIUM (default /usr/bin/chromium); SLUICE_SCREENSHOTS, a directory to
// save screenshots in; SLUICE_EXPECT_INCOMPLETE=1 when the server answers every query
// Incomplete at first.

import { chromium } from "playwright-core";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const url = process.env.SLUICE_URL ?? "http://127.0.0.1:8080";
const slsId = process.env.SLUICE_SLS_ID ?? "shop-reader";
const slsSecret = process.env.SLUICE_SLS_SECRET ?? "shop-reader-secret";
const shopKey = process.env.SLUICE_SHOP_KEY ?? "pk_shop";
const bankKey = process.env.SLUICE_BANK_KEY ?? "pk_bank";
const ltsToken = process.env.SLUICE_LTS_TOKEN ?? "lts-shop-token";
const shots = process.env.SLUICE_SCREENSHOTS;
// The server answers every query Incomplete at first ([server] query_deadline_secs = 0):
// the page must show it and ask again until the answer is complete.
const expectIncomplete = process.env.SLUICE_EXPECT_INCOMPLETE === "1";
const result = {};

const LEVELS = ["debug", "info", "info", "info", "warn", "error"];
const WORDS = ["checkout", "payment", "login", "search", "cart", "profile"];
const now = Math.floor(Date.now() / 1000);

/// Logs of the last 20 minutes: levels, users, traces of 5 logs each, a few words.
function generate(count) {
  const logs = [];
  for (let i = 0; i < count; i++) {
    const t = now - 1200 + Math.floor((i * 1200) / count);
    const word = WORDS[i % WORDS.length];
    logs.push({
      timestamp: t + (i % 1000) / 1000,
      level: LEVELS[i % LEVELS.length],
      message: `${word} request ${i} handled for user_${i % 17}`,
      trace_id: `trace_${Math.floor(i / 5)}`,
      user: { id: `user_${i % 17}` },
      account: { id: `acct_${i % 3}` },
      logger_name: `svc.${word}`,
    });
  }
  return logs;
}

/// Sends logs in batches of 100 (Proliferate's largest), a few at a time.
async function sendAll(key, logs) {
  const batches = [];
  for (let i = 0; i < logs.length; i += 100) batches.push(logs.slice(i, i + 100));
  for (let i = 0; i < batches.length; i += 4) await Promise.all(batches.slice(i, i + 4).map((b) => send(key, b)));
}

async function send(key, logs, extra = {}) {
  const response = await fetch(`${url}/api/v1/logs/batch`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ api_key: key, environment: "production", release: "v1.4.2", logs, ...extra }),
  });
  const body = await response.json();
  assert.equal(response.status, 202, JSON.stringify(body));
  assert.equal(body.dropped, 0);
  return body.accepted;
}

const checks = [];
function check(name, details = "") {
  checks.push(name);
  console.log(`ok - ${name}${details ? ` (${details})` : ""}`);
}

async function shot(page, name) {
  if (!shots) return;
  mkdirSync(shots, { recursive: true });
  await page.screenshot({ path: join(shots, `${name}.png`) });
}

/// The total the page shows once its histogram is complete.
async function total(page) {
  await page.waitForFunction(() => {
    const el = document.getElementById("progress");
    const total = document.getElementById("total");
    return el?.dataset.progress === "Complete" && total?.dataset.total !== undefined;
  });
  return Number(await page.getAttribute("#total", "data-total"));
}

/// Waits for the list of a search to settle and returns what it shows.
async function listed(page) {
  await page.waitForFunction(() => document.getElementById("more")?.textContent !== "loading…");
  await page.waitForFunction(() => document.querySelectorAll("#logs li.log").length > 0 || document.getElementById("more")?.textContent === "no logs match");
  return page.$$eval("#logs li.log", (items) =>
    items.map((li) => ({
      time: Number(li.dataset.time),
      level: li.querySelector(".level")?.textContent ?? "",
      message: li.querySelector(".msg")?.textContent ?? "",
      marked: [...li.querySelectorAll(".msg mark")].map((m) => m.textContent),
    })),
  );
}

async function signIn(page, fill) {
  await page.goto(url);
  await page.waitForSelector("#signin:not([hidden])");
  await fill(page);
  await page.click("#signin-submit");
  await page.waitForSelector("#explorer:not([hidden])");
}

async function main() {
  const seeded = generate(3000);
  await sendAll(shopKey, seeded);
  await sendAll(bankKey, generate(200).map((l) => ({ ...l, message: `bank ${l.message}` })));
  result.seeded = seeded.length;

  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
  try {
    const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    // Whether the page ever showed a histogram still counting (Incomplete).
    await context.addInitScript(() => {
      document.addEventListener("DOMContentLoaded", () => {
        const progress = document.getElementById("progress");
        new MutationObserver(() => {
          if (progress?.dataset.progress === "Incomplete") window.sawIncomplete = progress.textContent;
        }).observe(progress, { attributes: true, childList: true });
      });
    });
    const page = await context.newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    // Failed calls, printed if a check fails.
    const failed = [];
    page.on("response", async (r) => {
      if (r.status() >= 400) failed.push(`${r.status()} ${r.request().method()} ${r.url()} ${await r.text().catch(() => "")}`);
    });
    process.on("exit", (code) => code && failed.length && console.error(`failed calls:\n${failed.join("\n")}`));

    // Sign-in: the development setup pre-fills the demo key; sign in as the shop reader.
    await signIn(page, async (p) => {
      assert.equal(await p.inputValue("#signin-id"), "sluice-demo", "the demo credentials are pre-filled");
      await p.fill("#signin-id", slsId);
      await p.fill("#signin-secret", slsSecret);
    });
    const cookies = await context.cookies();
    const session = cookies.find((c) => c.name === "sluice_session");
    assert.ok(session, "a session cookie");
    assert.equal(session.httpOnly, true);
    assert.equal(session.sameSite, "Strict");
    assert.ok(session.expires > now, "the session expires");
    assert.equal(await page.evaluate(() => document.cookie.includes("sluice_session")), false);
    const stored = await page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }));
    assert.ok(!stored.includes(slsSecret), "no secret is kept in the browser");
    assert.ok(!(await page.content()).includes(slsSecret), "the secret is not left in the page");
    const pickers = async (p) => [
      ...(await p.$$eval("#project option", (os) => os.map((o) => o.value))),
      ...(await p.$$eval("#logstore option", (os) => os.map((o) => o.value))),
    ];
    const stores = await pickers(page);
    assert.deepEqual(stores, ["shop", "logs"]);
    check("sign-in", `${await page.textContent("#who")}, HttpOnly SameSite=Strict cookie, logstores ${stores}`);

    // The histogram's total over a fixed range and query: compared with GetHistograms.
    const from = now - 1500;
    const to = now + 60;
    const errorQuery = "level: error";
    const screen = (query, extra = "") =>
      `${url}/?project=shop&logstore=logs&range=abs&from=${from}&to=${to}&query=${encodeURIComponent(query)}${extra}`;
    await page.goto(screen(errorQuery));
    const errorsTotal = await total(page);
    result.histogram = { from, to, query: errorQuery, total: errorsTotal };
    assert.equal(errorsTotal, seeded.filter((l) => l.level === "error").length);
    const bars = await page.$$eval("#histogram canvas", (c) => c.length);
    assert.ok(bars > 0, "a histogram is drawn");
    check("histogram total", `${errorsTotal} errors`);
    if (expectIncomplete) {
      const shown = await page.evaluate(() => window.sawIncomplete);
      assert.equal(shown, "still counting…", "the page shows the histogram is still counting");
      check("progress indicator", `"${shown}" until the answer was complete`);
    }

    // A search narrows the list: everything, then a word; the word is marked.
    await page.goto(screen(""));
    const all = await total(page);
    assert.equal(all, seeded.length);
    const first = await listed(page);
    assert.equal(first.length, 100, "the first page holds 100 logs");
    for (let i = 1; i < first.length; i++) assert.ok(first[i - 1].time >= first[i].time, "newest first");
    // The bars are colored by level: one series per level in the fields.
    await page.waitForFunction(() => document.getElementById("histogram")?.dataset.stacks);
    const stacks = (await page.getAttribute("#histogram", "data-stacks")).split(",").sort();
    assert.deepEqual(stacks, ["debug", "error", "info", "warn"]);
    await page.waitForSelector("#fields[data-ready]");
    await shot(page, "search");
    await page.fill("#query", "checkout");
    await page.press("#query", "Enter");
    await page.waitForFunction((all) => Number(document.getElementById("total")?.dataset.total) < all, all);
    const narrowed = await total(page);
    const checkoutLogs = seeded.filter((l) => l.message.startsWith("checkout")).length;
    assert.equal(narrowed, checkoutLogs);
    const shown = await listed(page);
    assert.ok(shown.length > 0 && shown.every((l) => l.message.includes("checkout")), "every log has the word");
    assert.ok(shown.every((l) => l.marked.includes("checkout")), "the word is marked");
    assert.match(page.url(), /query=checkout/);
    check("search narrows the list", `${all} -> ${narrowed}`);

    // Infinite scroll: the next page arrives when the end of the list is reached.
    await page.fill("#query", "");
    await page.press("#query", "Enter");
    await page.waitForFunction((all) => Number(document.getElementById("total")?.dataset.total) === all, all);
    await listed(page);
    await page.locator("#more").scrollIntoViewIfNeeded();
    await page.waitForFunction(() => document.querySelectorAll("#logs li.log").length >= 200);
    check("infinite scroll", "200 logs after one scroll");

    // Drag to zoom: the middle half of the histogram becomes the range.
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.waitForFunction(() => document.getElementById("histogram")?.dataset.stacks);
    const box = await page.locator("#histogram .u-over").boundingBox();
    await page.mouse.move(box.x + box.width * 0.25, box.y + box.height / 2);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width * 0.5, box.y + box.height / 2, { steps: 8 });
    await page.mouse.up();
    await page.waitForFunction(() => new URL(location.href).searchParams.get("from") !== null);
    await page.waitForFunction((all) => Number(document.getElementById("total")?.dataset.total) < all, all);
    const zoomed = new URL(page.url()).searchParams;
    const [zFrom, zTo] = [Number(zoomed.get("from")), Number(zoomed.get("to"))];
    assert.ok(zFrom > from && zTo < to && zTo > zFrom, `zoomed into [${zFrom}, ${zTo})`);
    const zoomTotal = await total(page);
    const inZoom = seeded.filter((l) => l.timestamp >= zFrom && l.timestamp < zTo).length;
    assert.equal(zoomTotal, inZoom);
    const zoomList = await listed(page);
    assert.ok(zoomList.every((l) => l.time >= zFrom && l.time < zTo), "the list is within the new range");
    check("drag to zoom", `[${zFrom}, ${zTo}): ${zoomTotal} logs`);

    // A facet click adds the filter.
    await page.goto(screen(""));
    await total(page);
    const warn = page.locator('#fields details[data-field="level"] li', { hasText: "warn" }).locator(".value");
    await warn.click();
    await page.waitForFunction(() => document.getElementById("query")?.value === 'level: "warn"');
    const warnTotal = await total(page);
    assert.equal(warnTotal, seeded.filter((l) => l.level === "warn").length);
    const warnList = await listed(page);
    assert.ok(warnList.every((l) => l.level === "warn"), "only warn logs are listed");
    // The level field counts the whole range (from the level histograms).
    await page.goto(screen(""));
    await page.waitForSelector('#fields details[data-field="level"][data-exact]');
    const levelCounts = await page.$$eval('#fields details[data-field="level"] li', (lis) =>
      Object.fromEntries(lis.map((li) => [li.querySelector(".value").textContent, li.querySelector(".count").textContent])),
    );
    assert.deepEqual(levelCounts, { info: "1,500", error: "500", warn: "500", debug: "500" });
    const users = await page.$$eval('#fields details[data-field="user_id"] li', (li) => li.length);
    assert.ok(users > 0, "the user field has values");
    check("facet click", `level: "warn" -> ${warnTotal} logs`);

    // An invalid query shows the error at its position.
    await page.fill("#query", "level: (error");
    await page.press("#query", "Enter");
    await page.waitForSelector("#query-error:not([hidden])");
    const position = Number(await page.getAttribute("#query-error", "data-position"));
    const shownError = await page.textContent("#query-error");
    assert.equal(position, "level: ".length, shownError);
    assert.match(shownError, /InvalidQueryString/);
    const marked = await page.textContent("#query-mark mark");
    assert.equal(marked, "(");
    check("invalid query", `position ${position}: ${shownError.split("\n").pop()}`);

    // The trace view: every log of one trace, oldest first.
    const trace = "trace_321";
    const traceLogs = seeded.filter((l) => l.trace_id === trace);
    await page.goto(screen(`trace_id: ${trace}`));
    await total(page);
    const firstLog = page.locator("#logs li.log").first();
    await firstLog.locator(".line").click();
    await firstLog.locator("button.trace").click();
    await page.waitForFunction(
      (n) => document.querySelectorAll("#panel-logs li.log").length === n,
      traceLogs.length,
    );
    const traced = await page.$$eval("#panel-logs li.log", (items) =>
      items.map((li) => ({ time: Number(li.dataset.time), message: li.querySelector(".msg")?.textContent })),
    );
    assert.deepEqual(
      traced.map((l) => l.message),
      traceLogs.map((l) => l.message),
      "the trace's logs, oldest first",
    );
    assert.match(page.url(), /view=trace/);
    await shot(page, "trace");
    check("trace view", `${traced.length} logs of ${trace} in order`);

    // A link reproduces the screen, the trace view included.
    const link = page.url();
    const other = await context.newPage();
    await other.goto(link);
    await other.waitForFunction((n) => document.querySelectorAll("#panel-logs li.log").length === n, traceLogs.length);
    assert.equal(await other.inputValue("#query"), `trace_id: ${trace}`);
    await other.close();
    check("shareable URL", "a second tab shows the same trace view");

    // Context: the logs around one in its source.
    await page.goto(screen("checkout"));
    await total(page);
    const log = page.locator("#logs li.log").nth(3);
    await log.locator(".line").click();
    await log.locator("button.context").click();
    await page.waitForSelector("#panel-logs li.log.anchor");
    const around = await page.$$eval("#panel-logs li.log", (items) => items.length);
    assert.ok(around > 1, "logs around the anchor");
    check("context", `${around} logs around one`);

    // SQL: a table and a bar chart of a one-dimension aggregate.
    await page.goto(screen("* | select level, count(*) as c group by level order by c desc"));
    await page.waitForSelector("#sql-table tr td");
    await page.waitForSelector("#sql-chart canvas");
    const [header, ...rows] = await page.$$eval("#sql-table tr", (trs) =>
      trs.map((tr) => [...tr.querySelectorAll("th, td")].map((td) => td.textContent)),
    );
    assert.deepEqual(header, ["level", "c"], "the SQL's columns in its order");
    const counts = Object.fromEntries(rows.map((r) => [r[0], Number(r[1])]));
    for (const level of new Set(LEVELS)) assert.equal(counts[level], seeded.filter((l) => l.level === level).length);
    assert.equal(await page.getAttribute("#sql-chart", "data-kind"), "bar");
    await page.waitForFunction(() => document.getElementById("histogram")?.dataset.stacks);
    await shot(page, "sql");
    check("SQL chart", JSON.stringify(counts));

    // Live tail: a log sent after the page opened appears within a few seconds.
    await page.goto(`${url}/?project=shop&logstore=logs&range=15m&live=1`);
    await total(page);
    await listed(page);
    const marker = `live-${Date.now()}`;
    const sent = Date.now();
    await send(shopKey, [{ timestamp: Date.now() / 1000, level: "info", message: `${marker} arrived` }]);
    await page.waitForFunction(
      (m) => [...document.querySelectorAll("#logs li.log .msg")].some((e) => e.textContent.includes(m)),
      marker,
      { timeout: 15000 },
    );
    const seenAfter = Date.now() - sent;
    result.liveTailMs = seenAfter;
    // The histogram follows the clock too (every 5 ticks), and counts the new log.
    const drawnTo = Number(await page.getAttribute("#histogram", "data-to"));
    await page.waitForFunction((to) => Number(document.getElementById("histogram")?.dataset.to) > to, drawnTo, {
      timeout: 20000,
    });
    await total(page);
    check("live tail", `shown ${seenAfter} ms after it was accepted; the histogram moved on`);

    // Sign out ends the session on the server too.
    await page.click("#signout");
    await page.waitForSelector("#signin:not([hidden])");
    const afterSignOut = await page.evaluate(async (u) => (await fetch(`${u}/ui/api/shop/logs?type=histogram&from=0&to=1`)).status, url);
    assert.equal(afterSignOut, 401);
    check("sign out");

    // One project's credential cannot see another's logstores.
    const bank = await browser.newContext();
    const bankPage = await bank.newPage();
    await signIn(bankPage, async (p) => {
      await p.selectOption("#signin-kind", "proliferate");
      await p.fill("#signin-key", bankKey);
    });
    const bankStores = await pickers(bankPage);
    assert.deepEqual(bankStores, ["bank", "logs"]);
    await bankPage.goto(`${url}/?project=bank&logstore=logs&range=1h`);
    const bankTotal = await total(bankPage);
    assert.equal(bankTotal, 200);
    const denied = await bankPage.evaluate(async (u) => {
      const csrf = (await (await fetch("/ui/session")).json()).csrf;
      const ask = async (path, headers) => {
        const r = await fetch(`${u}${path}`, { headers });
        return { status: r.status, body: await r.json() };
      };
      return {
        other: await ask("/ui/api/shop/logs?type=histogram&from=0&to=2000000000", { "x-sluice-csrf": csrf }),
        noCsrf: await ask("/ui/api/bank/logs?type=histogram&from=0&to=2000000000", {}),
      };
    }, url);
    assert.equal(denied.other.status, 403, JSON.stringify(denied.other));
    assert.equal(denied.noCsrf.status, 403, JSON.stringify(denied.noCsrf));
    await bankPage.goto(`${url}/?project=shop&logstore=logs`);
    await bankPage.waitForSelector("#explorer:not([hidden])");
    assert.equal(await bankPage.inputValue("#project"), "bank", "a link to another project falls back");
    check("isolation", `bank key sees ${bankStores}; shop/logs answers ${denied.other.status} ${JSON.stringify(denied.other.body)}`);
    await bank.close();

    // A key for every project picks between them: the project picker switches logstores.
    const admin = await browser.newContext();
    const adminPage = await admin.newPage();
    await signIn(adminPage, async () => {}); // the pre-filled demo key
    assert.deepEqual(await adminPage.$$eval("#project option", (os) => os.map((o) => o.value)), ["bank", "shop"]);
    await adminPage.goto(`${url}/?project=shop&logstore=logs&range=1h`);
    await total(adminPage);
    await adminPage.selectOption("#project", "bank");
    await adminPage.waitForFunction(() => new URL(location.href).searchParams.get("project") === "bank");
    assert.equal(await total(adminPage), 200);
    check("project picker", "the demo key sees bank and shop; picking bank shows its 200 logs");
    await admin.close();

    // A sign-in from another site is refused.
    const forged = await fetch(`${url}/ui/session`, {
      method: "POST",
      headers: { "content-type": "application/json", origin: "https://evil.example" },
      body: JSON.stringify({ kind: "proliferate", key: bankKey }),
    });
    assert.equal(forged.status, 403);
    check("cross-site sign-in refused");

    // An LTS token signs in too, and sees its stream's logstore; a wrong one gets LTS's error.
    const ltsSignIn = async (token) => {
      const r = await fetch(`${url}/ui/session`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ kind: "lts", token }),
      });
      return { status: r.status, body: await r.json() };
    };
    const lts = await ltsSignIn(ltsToken);
    assert.equal(lts.status, 200, JSON.stringify(lts.body));
    assert.deepEqual(lts.body.logstores.map((l) => `${l.project}/${l.logstore}`), ["shop/logs"]);
    const wrongLts = await ltsSignIn("not-a-token");
    assert.equal(wrongLts.status, 401);
    assert.equal(wrongLts.body.errorCode, "SVCSTG.ALS.403.105", JSON.stringify(wrongLts.body));
    check("LTS token sign-in", `${lts.body.signedInAs} sees shop/logs; a wrong token: ${wrongLts.body.errorCode}`);

    assert.deepEqual(errors, [], "no script errors");
  } finally {
    await browser.close();
  }
  console.log(`${checks.length} checks passed`);
  console.log(`RESULT ${JSON.stringify(result)}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
