// The log explorer: one page over the SLS read APIs of `sluice serve` (GetHistograms,
// GetLogs, GetContextLogs), called with the session's cookie and CSRF token, plus the
// facets call. Everything the screen shows is in the URL, so a link reproduces it.

import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import "./app.css";

type Log = Record<string, string>;
/// GetLogs' answer (V2): the logs, or the SQL's rows, and the SQL's columns in order.
type Logs = { meta: { progress: string; keys?: string[]; count: number }; data: Log[] };
type Bucket = { from: number; to: number; count: number; progress: string };
type Facet = { name: string; present: number; distinct: number; top: { value: string; count: number }[] };
type Logstore = { project: string; logstore: string };
type SessionInfo = { signedInAs: string; csrf: string; logstores: Logstore[] };

const RANGES: Record<string, number> = { "15m": 900, "1h": 3600, "24h": 86400, "7d": 7 * 86400 };
const LEVELS = ["debug", "info", "warn", "error", "fatal"];
const PAGE = 100;
const TRACE_WINDOW = 300;
const CONTEXT_LINES = 20;
const LIVE_EVERY_MS = 2000;
/// Errors that say "later": the call is retried.
const BUSY = ["ExceedQuota", "ServerBusy", "QueryBusy", "RequestTimeout"];

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

/// What the screen shows; the URL holds it.
type View = {
  project: string;
  logstore: string;
  range: string; // a key of RANGES, or "abs"
  from: number; // seconds, for "abs"
  to: number;
  query: string;
  levels: string[];
  chips: Record<string, string>;
  view: "logs" | "trace" | "context";
  trace: string;
  at: number; // the time the trace view is centered on
  live: boolean;
};

const CHIP_KEYS = ["trace", "user", "account", "environment", "release"] as const;
const CHIP_FIELDS: Record<string, string> = {
  trace: "trace_id",
  user: "user_id",
  account: "account_id",
  environment: "environment",
  release: "release",
};

let session: SessionInfo | null = null;
let state: View = defaults();
/// Each search has a number: answers of an older one are dropped.
let generation = 0;
let window_: { from: number; to: number } = { from: 0, to: 0 };
let offset = 0;
let exhausted = false;
let loading = false;
let seen = new Set<string>();
let chart: uPlot | null = null;
let liveTimer: number | undefined;

function defaults(): View {
  return {
    project: "",
    logstore: "",
    range: "15m",
    from: 0,
    to: 0,
    query: "",
    levels: [],
    chips: {},
    view: "logs",
    trace: "",
    at: 0,
    live: false,
  };
}

// ---- URL state ----

function readUrl(): View {
  const p = new URLSearchParams(location.search);
  const v = defaults();
  v.project = p.get("project") ?? "";
  v.logstore = p.get("logstore") ?? "";
  const range = p.get("range") ?? "15m";
  v.range = range in RANGES || range === "abs" ? range : "15m";
  v.from = Number(p.get("from") ?? 0) || 0;
  v.to = Number(p.get("to") ?? 0) || 0;
  v.query = p.get("query") ?? "";
  v.levels = (p.get("levels") ?? "").split(",").filter((l) => LEVELS.includes(l));
  for (const key of CHIP_KEYS) {
    const value = p.get(key);
    if (value) v.chips[key] = value;
  }
  const view = p.get("view");
  v.view = view === "trace" || view === "context" ? view : "logs";
  v.trace = p.get("traceId") ?? "";
  v.at = Number(p.get("at") ?? 0) || 0;
  v.live = p.get("live") === "1";
  return v;
}

function writeUrl(push: boolean) {
  const p = new URLSearchParams();
  if (state.project) p.set("project", state.project);
  if (state.logstore) p.set("logstore", state.logstore);
  p.set("range", state.range);
  if (state.range === "abs") {
    p.set("from", String(state.from));
    p.set("to", String(state.to));
  }
  if (state.query) p.set("query", state.query);
  if (state.levels.length) p.set("levels", state.levels.join(","));
  for (const key of CHIP_KEYS) if (state.chips[key]) p.set(key, state.chips[key]);
  if (state.view !== "logs") {
    p.set("view", state.view);
    p.set("traceId", state.trace);
    p.set("at", String(state.at));
  }
  if (state.live) p.set("live", "1");
  const url = `${location.pathname}?${p}`;
  if (url !== location.pathname + location.search) {
    if (push) history.pushState(null, "", url);
    else history.replaceState(null, "", url);
  }
}

// ---- calls ----

class ApiError extends Error {
  constructor(
    public status: number,
    public code: string,
    message: string,
    public position?: number,
    public reason?: string,
  ) {
    super(message);
  }
}

async function call<T>(path: string, params: Record<string, string | number | boolean> = {}, init: RequestInit = {}) {
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) qs.set(k, String(v));
  const url = Object.keys(params).length ? `${path}?${qs}` : path;
  const headers: Record<string, string> = { ...(init.headers as Record<string, string>) };
  if (session) headers["x-sluice-csrf"] = session.csrf;
  let response: Response;
  let body: any = null;
  let text = "";
  // Queries still running for this credential (a page left a moment ago) or a busy
  // server: wait and ask again, as the SDKs do.
  for (let attempt = 0; ; attempt++) {
    response = await fetch(url, { ...init, headers, credentials: "same-origin" });
    text = await response.text();
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      body = { errorMessage: text };
    }
    const busy = BUSY.includes(body?.errorCode) && (response.status === 403 || response.status >= 500);
    if (!busy || attempt >= 8) break;
    await pause(200 * 1.5 ** attempt);
  }
  if (!response.ok) {
    if (response.status === 401 && path !== "/ui/session") showSignIn();
    throw new ApiError(response.status, body?.errorCode ?? "Error", body?.errorMessage ?? text, body?.position, body?.reason);
  }
  return { body: body as T, headers: response.headers };
}

function logstorePath() {
  return `/ui/api/${encodeURIComponent(state.project)}/${encodeURIComponent(state.logstore)}`;
}

/// How long to wait before asking again for an answer that is still `Incomplete` (the
/// server answers so after `query_deadline_secs` and goes on with the query; asking
/// again joins it).
const POLL_MS = 300;
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---- sign-in ----

function showSignIn(demo?: { kind: string; id?: string; secret?: string; token?: string; key?: string }) {
  session = null;
  stopLive();
  $("explorer").hidden = true;
  $("signin").hidden = false;
  if (demo) {
    $<HTMLSelectElement>("signin-kind").value = demo.kind;
    $<HTMLInputElement>("signin-id").value = demo.id ?? "";
    $<HTMLInputElement>("signin-secret").value = demo.secret ?? "";
    $<HTMLInputElement>("signin-token").value = demo.token ?? "";
    $<HTMLInputElement>("signin-key").value = demo.key ?? "";
  }
  showKind();
}

function showKind() {
  const kind = $<HTMLSelectElement>("signin-kind").value;
  document.querySelectorAll<HTMLElement>("[data-kind]").forEach((el) => (el.hidden = el.dataset.kind !== kind));
}

async function signIn(event: Event) {
  event.preventDefault();
  const kind = $<HTMLSelectElement>("signin-kind").value;
  const form: Record<string, string> = { kind };
  if (kind === "sls") {
    form.id = $<HTMLInputElement>("signin-id").value.trim();
    form.secret = $<HTMLInputElement>("signin-secret").value;
  } else if (kind === "lts") form.token = $<HTMLInputElement>("signin-token").value.trim();
  else form.key = $<HTMLInputElement>("signin-key").value.trim();
  $("signin-error").textContent = "";
  try {
    const { body } = await call<SessionInfo>(
      "/ui/session",
      {},
      { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(form) },
    );
    for (const id of ["signin-secret", "signin-token", "signin-key"]) $<HTMLInputElement>(id).value = "";
    started(body);
  } catch (e) {
    const error = e as ApiError;
    $("signin-error").textContent = `${error.code}: ${error.message}`;
  }
}

async function signOut() {
  try {
    await call("/ui/session", {}, { method: "DELETE" });
  } finally {
    const { body } = await fetch("/ui/session").then(async (r) => ({ body: await r.json().catch(() => ({})) }));
    showSignIn(body?.demo);
  }
}

function started(info: SessionInfo) {
  session = info;
  $("signin").hidden = true;
  $("explorer").hidden = false;
  $("who").textContent = info.signedInAs;
  const projects = [...new Set(info.logstores.map((l) => l.project))];
  $<HTMLSelectElement>("project").replaceChildren(...projects.map((p) => option(p, p)));
  settle();
  showState();
  search(false);
}

// ---- the controls ----

function option(value: string, text: string) {
  const o = document.createElement("option");
  o.value = value;
  o.textContent = text;
  return o;
}

/// Keeps the screen on a logstore the session may read: the URL's, else the project's
/// first, else the first of all.
function settle() {
  const stores = session?.logstores ?? [];
  if (stores.some((l) => l.project === state.project && l.logstore === state.logstore)) return;
  const fallback = stores.find((l) => l.project === state.project) ?? stores[0];
  state.project = fallback?.project ?? "";
  state.logstore = fallback?.logstore ?? "";
}

function showState() {
  $<HTMLSelectElement>("project").value = state.project;
  const stores = (session?.logstores ?? []).filter((l) => l.project === state.project);
  $<HTMLSelectElement>("logstore").replaceChildren(...stores.map((l) => option(l.logstore, l.logstore)));
  $<HTMLSelectElement>("logstore").value = state.logstore;
  $<HTMLSelectElement>("range").value = state.range;
  $("absolute").hidden = state.range !== "abs";
  if (state.range === "abs") {
    $<HTMLInputElement>("from").value = toLocalInput(state.from);
    $<HTMLInputElement>("to").value = toLocalInput(state.to);
  }
  $<HTMLInputElement>("query").value = state.query;
  for (const key of CHIP_KEYS) $<HTMLInputElement>(`chip-${key}`).value = state.chips[key] ?? "";
  document.querySelectorAll<HTMLButtonElement>("#levels button").forEach((b) => {
    b.setAttribute("aria-pressed", String(state.levels.includes(b.dataset.level!)));
  });
  $<HTMLInputElement>("live").checked = state.live;
}

function readControls() {
  const project = $<HTMLSelectElement>("project").value;
  // Another project: its first logstore.
  state.logstore = project === state.project ? $<HTMLSelectElement>("logstore").value : "";
  state.project = project;
  settle();
  state.range = $<HTMLSelectElement>("range").value;
  if (state.range === "abs") {
    state.from = fromLocalInput($<HTMLInputElement>("from").value) ?? state.from;
    state.to = fromLocalInput($<HTMLInputElement>("to").value) ?? state.to;
  }
  state.query = $<HTMLInputElement>("query").value.trim();
  for (const key of CHIP_KEYS) {
    const value = $<HTMLInputElement>(`chip-${key}`).value.trim();
    if (value) state.chips[key] = value;
    else delete state.chips[key];
  }
}

function toLocalInput(seconds: number) {
  const d = new Date(seconds * 1000);
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

function fromLocalInput(value: string) {
  const ms = new Date(value).getTime();
  return Number.isFinite(ms) ? Math.floor(ms / 1000) : undefined;
}

/// The range a search covers, in seconds: `[from, to)`.
function currentWindow() {
  if (state.range === "abs" && state.to > state.from) return { from: state.from, to: state.to };
  const now = Math.floor(Date.now() / 1000) + 1;
  return { from: now - (RANGES[state.range] ?? 900), to: now };
}

function quote(value: string) {
  return `"${value.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

/// The query sent: the box's search, and the chips, before any `| SQL`.
function effectiveQuery() {
  const [typed, ...sql] = splitSql(state.query);
  const chips: string[] = [];
  if (state.levels.length) chips.push(`(${state.levels.map((l) => `level: ${l}`).join(" or ")})`);
  for (const key of CHIP_KEYS) if (state.chips[key]) chips.push(`${CHIP_FIELDS[key]}: ${quote(state.chips[key])}`);
  if (!chips.length) return state.query || "*";
  const search = typed.trim() && typed.trim() !== "*" ? [`(${typed.trim()})`] : [];
  const where = [...search, ...chips].join(" and ");
  return sql.length ? `${where} | ${sql.join("|")}` : where;
}

/// The search part and the SQL part of a query (a `|` outside quotes splits them).
function splitSql(query: string): string[] {
  let quoted = false;
  for (let i = 0; i < query.length; i++) {
    const c = query[i];
    if (c === "\\" && quoted) i++;
    else if (c === '"') quoted = !quoted;
    else if (c === "|" && !quoted) return [query.slice(0, i), query.slice(i + 1)];
  }
  return [query];
}

/// The words a search looks for, to highlight them in logs.
function terms(query: string): string[] {
  const search = splitSql(query)[0];
  const out: string[] = [];
  for (const m of search.matchAll(/"((?:[^"\\]|\\.)*)"|([^\s():"<>=\[\]]+)(\s*:)?/g)) {
    if (m[1] !== undefined) out.push(m[1].replace(/\\(.)/g, "$1"));
    else if (m[2] && !m[3] && !/^(and|or|not|\*)$/i.test(m[2])) out.push(m[2].replace(/[*?]/g, ""));
  }
  return out.filter((t) => t.length > 0);
}

// ---- searching ----

function search(push: boolean) {
  generation++;
  writeUrl(push);
  hideError();
  window_ = currentWindow();
  offset = 0;
  exhausted = false;
  seen = new Set();
  $("logs").replaceChildren();
  delete $("histogram").dataset.stacks;
  if (state.view === "logs") $("panel").hidden = true;
  const sql = splitSql(state.query).length > 1;
  $("sql").hidden = !sql;
  $("logs").hidden = sql;
  const g = generation;
  const fields = facets(g);
  lastFields = fields;
  histogram(g, fields);
  if (sql) runSql(g);
  else more(g);
  if (state.view === "trace") showTrace(state.trace, state.at);
  restartLive();
}

function params(extra: Record<string, string | number | boolean> = {}) {
  return { from: window_.from, to: window_.to, query: effectiveQuery(), ...extra };
}

async function histogram(g: number, fields: Promise<Facet[] | null>) {
  $("progress").textContent = "…";
  $("progress").dataset.progress = "Running";
  delete $("total").dataset.total;
  const started = performance.now();
  try {
    for (;;) {
      const { body, headers } = await call<Bucket[]>(logstorePath(), params({ type: "histogram" }));
      if (g !== generation) return;
      const progress = headers.get("x-log-progress") ?? "Complete";
      drawHistogram(body);
      $("histogram").dataset.to = String(window_.to);
      const total = body.reduce((sum, b) => sum + b.count, 0);
      $("total").textContent = `${total.toLocaleString("en-US")} logs`;
      $("total").dataset.total = String(total);
      $("progress").textContent = progress === "Complete" ? "" : "still counting…";
      $("progress").dataset.progress = progress;
      $("timing").textContent = `${Math.round(performance.now() - started)} ms`;
      if (progress === "Complete") return levelStacks(g, body, fields);
      await pause(POLL_MS);
    }
  } catch (e) {
    if (g === generation) showError(e as ApiError);
  }
}

/// One colored part of the histogram's bars: the logs of one level.
type Stack = { label: string; color: string; counts: number[] };

const LEVEL_COLORS: Record<string, string> = {
  fatal: "#7f0000",
  critical: "#7f0000",
  error: "#c62828",
  warn: "#e39a1b",
  warning: "#e39a1b",
  info: "#43a047",
  debug: "#90a4ae",
  trace: "#b0bec5",
};

/// Draws the bars: all logs, or stacked by level (each level's bar on top of the levels
/// after it; what no level counted stays in the base color).
function drawHistogram(buckets: Bucket[], stacks: Stack[] = []) {
  const el = $("histogram");
  const xs = buckets.map((b) => b.from);
  const width = Math.max(el.clientWidth, 300);
  const step = buckets.length > 1 ? buckets[1].from - buckets[0].from : 60;
  // Cumulative from the last stack up: series i covers stacks i.., drawn in order so
  // that each shorter bar paints over the taller one before it.
  const tops = stacks.map((_, i) => xs.map((_, j) => stacks.slice(i).reduce((sum, st) => sum + (st.counts[j] ?? 0), 0)));
  const data: uPlot.AlignedData = [xs, buckets.map((b) => b.count), ...tops];
  const bars = uPlot.paths.bars!({ size: [0.9, 100], align: 1 });
  const series: uPlot.Series[] = [
    {},
    { label: "logs", fill: "rgba(53, 89, 224, 0.35)", stroke: "#3559e0", paths: bars, points: { show: false } },
    ...stacks.map((st) => ({
      label: st.label,
      fill: st.color,
      stroke: st.color,
      paths: bars,
      points: { show: false },
    })),
  ];
  if (chart) {
    // The same chart, its series changed in place: a drag in progress goes on.
    while (chart.series.length > 2) chart.delSeries(chart.series.length - 1);
    for (const extra of series.slice(2)) chart.addSeries(extra);
    chart.setData(data);
    if (Math.abs(chart.width - width) > 1) chart.setSize({ width, height: 160 });
    el.dataset.stacks = stacks.map((st) => st.label).join(",");
    return;
  }
  el.dataset.stacks = "";
  chart = new uPlot(
    {
      width,
      height: 160,
      legend: { show: true, live: false },
      cursor: { drag: { x: true, y: false, setScale: false } },
      scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(1, max)] } },
      axes: [{}, { size: 50 }],
      series,
      hooks: {
        setSelect: [
          (u) => {
            if (u.select.width < 3) return;
            const from = Math.floor(u.posToVal(u.select.left, "x"));
            const to = Math.ceil(u.posToVal(u.select.left + u.select.width, "x"));
            u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
            if (to - from >= 1 && to - from >= step / 60) zoom(from, to);
          },
        ],
      },
    },
    data,
    el,
  );
}

/// The histogram again, one series per level the fields show (at most 8): each a
/// GetHistograms of the search `and level: X`, which time rollups answer.
async function levelStacks(g: number, buckets: Bucket[], fields: Promise<Facet[] | null>) {
  const level = (await fields)?.find((f) => f.name === "level");
  if (!level || level.distinct === 0 || level.distinct > 8 || g !== generation) return;
  const search = splitSql(effectiveQuery())[0].trim();
  const stacks: Stack[] = [];
  for (const { value } of level.top) {
    const query = `${search && search !== "*" ? `(${search}) and ` : ""}level: ${quote(value)}`;
    let body: Bucket[] = [];
    for (;;) {
      const answer = await call<Bucket[]>(logstorePath(), params({ type: "histogram", query }));
      if (g !== generation) return;
      body = answer.body;
      if ((answer.headers.get("x-log-progress") ?? "Complete") === "Complete") break;
      await pause(POLL_MS);
    }
    stacks.push({ label: value, color: LEVEL_COLORS[value.toLowerCase()] ?? "#3559e0", counts: body.map((b) => b.count) });
  }
  // Most severe on top.
  const rank = (l: string) => ["fatal", "critical", "error", "warn", "warning", "info", "debug", "trace"].indexOf(l.toLowerCase());
  stacks.sort((a, b) => rank(b.label) - rank(a.label));
  drawHistogram(buckets, stacks);
  exactLevels(stacks);
}

/// The level field's counts over the whole range, from the level histograms (the rest of
/// the fields count the newest matches).
function exactLevels(stacks: Stack[]) {
  const details = document.querySelector<HTMLElement>('#fields details[data-field="level"]');
  if (!details) return;
  for (const li of details.querySelectorAll<HTMLElement>("li")) {
    const value = li.querySelector(".value")?.textContent;
    const stack = stacks.find((st) => st.label === value);
    const count = li.querySelector(".count");
    if (stack && count) count.textContent = stack.counts.reduce((a, b) => a + b, 0).toLocaleString("en-US");
  }
  details.querySelector("summary span")!.textContent = "whole range";
  details.dataset.exact = "1";
}

function zoom(from: number, to: number) {
  if (to <= from) return;
  state.range = "abs";
  state.from = from;
  state.to = to;
  state.live = false;
  showState();
  search(true);
}

async function more(g: number) {
  if (loading || exhausted) return;
  loading = true;
  $("more").textContent = "loading…";
  try {
    const { body: answer } = await call<Logs>(logstorePath(), params({ type: "log", line: PAGE, offset, reverse: true }));
    if (g !== generation) return;
    if (answer.meta.progress !== "Complete") {
      loading = false;
      setTimeout(() => more(g), POLL_MS);
      return;
    }
    const body = answer.data;
    offset += body.length;
    exhausted = body.length < PAGE;
    const list = $("logs");
    const highlight = terms(effectiveQuery());
    for (const log of body) {
      // In live mode new logs push older ones down: a page may repeat a few.
      const id = log.__pack_meta__ ?? JSON.stringify(log);
      if (seen.has(id)) continue;
      seen.add(id);
      list.append(renderLog(log, highlight));
    }
    $("more").textContent = exhausted ? (offset ? "" : "no logs match") : "";
    list.dataset.count = String(list.childElementCount);
  } catch (e) {
    if (g === generation) showError(e as ApiError);
  } finally {
    loading = false;
  }
}

function levelOf(log: Log) {
  return (log.level ?? log.__level__ ?? "").toLowerCase();
}

function messageOf(log: Log) {
  if (log.message !== undefined) return log.message;
  if (log.content !== undefined) return log.content;
  return Object.entries(log)
    .filter(([k]) => !k.startsWith("__"))
    .map(([k, v]) => `${k}=${v}`)
    .join(" ");
}

function timeOf(log: Log) {
  const seconds = Number(log.__time__ ?? 0);
  const nanos = Number(log.__time_ns_part__ ?? 0);
  const d = new Date(seconds * 1000 + Math.floor(nanos / 1e6));
  const pad = (n: number, w = 2) => String(n).padStart(w, "0");
  const date = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  return `${date} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/// Text with the search's terms marked (case-insensitively), as DOM nodes.
function marked(text: string, highlight: string[]): Node[] {
  if (!highlight.length) return [document.createTextNode(text)];
  const escaped = highlight.map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  const re = new RegExp(`(${escaped.join("|")})`, "gi");
  const out: Node[] = [];
  let last = 0;
  for (const m of text.matchAll(re)) {
    if (m.index! > last) out.push(document.createTextNode(text.slice(last, m.index)));
    const mark = document.createElement("mark");
    mark.textContent = m[0];
    out.push(mark);
    last = m.index! + m[0].length;
  }
  out.push(document.createTextNode(text.slice(last)));
  return out;
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, cls?: string, text?: string) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function renderLog(log: Log, highlight: string[], anchor = false): HTMLLIElement {
  const li = el("li", anchor ? "log anchor" : "log");
  li.dataset.time = log.__time__ ?? "";
  const line = el("div", "line");
  line.append(el("span", "time", timeOf(log)));
  const level = levelOf(log);
  if (level) line.append(el("span", `level level-${level}`, level));
  const msg = el("span", "msg");
  msg.append(...marked(messageOf(log), highlight));
  line.append(msg);
  li.append(line);
  line.addEventListener("click", () => toggleDetail(li, log));
  return li;
}

function toggleDetail(li: HTMLLIElement, log: Log) {
  const open = li.querySelector(".detail");
  if (open) {
    open.remove();
    return;
  }
  const detail = el("div", "detail");
  const actions = el("div", "actions");
  const copy = el("button", "copy", "Copy as JSON");
  copy.type = "button";
  copy.addEventListener("click", async () => {
    const text = JSON.stringify(log, null, 2);
    try {
      await navigator.clipboard.writeText(text);
      copy.textContent = "Copied";
    } catch {
      copy.textContent = "Copy failed";
    }
    li.dataset.json = text;
  });
  actions.append(copy);
  if (log.__pack_meta__) {
    const context = el("button", "context", "Context");
    context.type = "button";
    context.addEventListener("click", () => showContext(log));
    actions.append(context);
  }
  if (log.trace_id) {
    const trace = el("button", "trace", "Trace");
    trace.type = "button";
    trace.addEventListener("click", () => {
      state.view = "trace";
      state.trace = log.trace_id;
      state.at = Number(log.__time__);
      writeUrl(true);
      showTrace(state.trace, state.at);
    });
    actions.append(trace);
  }
  const table = el("table");
  for (const [key, value] of Object.entries(log).sort(([a], [b]) => a.localeCompare(b))) {
    const row = el("tr");
    const name = el("td", "", key);
    const cell = el("td");
    cell.append(el("span", "", value));
    row.append(name, cell);
    table.append(row);
  }
  detail.append(actions, table);
  li.append(detail);
}

// ---- SQL ----

async function runSql(g: number) {
  try {
    let answer;
    for (;;) {
      answer = (await call<Logs>(logstorePath(), params({ type: "log", line: PAGE, offset: 0 }))).body;
      if (g !== generation) return;
      if (answer.meta.progress === "Complete") break;
      await pause(POLL_MS);
    }
    drawSql(answer.data, answer.meta.keys ?? Object.keys(answer.data[0] ?? {}));
  } catch (e) {
    if (g === generation) showError(e as ApiError);
  }
}

function drawSql(rows: Log[], columns: string[]) {
  const table = $("sql-table");
  const head = el("tr");
  for (const c of columns) head.append(el("th", "", c));
  table.replaceChildren(head);
  for (const row of rows) {
    const tr = el("tr");
    for (const c of columns) tr.append(el("td", "", row[c]));
    table.append(tr);
  }
  const chartEl = $("sql-chart");
  chartEl.replaceChildren();
  const numeric = columns.filter((c) => rows.every((r) => r[c] !== "null" && r[c] !== "" && Number.isFinite(Number(r[c]))));
  const labels = columns.filter((c) => !numeric.includes(c));
  // One dimension and its measures: a bar chart, or a line over time.
  const dimension = labels.length === 1 ? labels[0] : labels.length === 0 && numeric.length >= 2 ? numeric[0] : null;
  const measures = numeric.filter((c) => c !== dimension);
  if (!dimension || !measures.length || rows.length < 1) return;
  const isTime = /time|minute|hour|day|date/i.test(dimension) && numeric.includes(dimension);
  const xs = rows.map((r, i) => (isTime ? Number(r[dimension]) : i));
  const order = xs.map((_, i) => i);
  if (isTime) order.sort((a, b) => xs[a] - xs[b]);
  const data: uPlot.AlignedData = [
    order.map((i) => xs[i]),
    ...measures.map((m) => order.map((i) => Number(rows[i][m]))),
  ];
  const colors = ["#3559e0", "#c62828", "#2e7d32", "#b26a00", "#6a1b9a"];
  new uPlot(
    {
      width: Math.max(chartEl.clientWidth, 300),
      height: 220,
      scales: {
        // Categories sit at 0..n-1, each in the middle of its slot.
        x: isTime ? { time: true } : { time: false, range: () => [-0.5, rows.length - 0.5] },
        y: { range: (_u, min, max) => [Math.min(0, min), Math.max(1, max)] },
      },
      axes: [
        isTime
          ? {}
          : {
              splits: () => rows.map((_, i) => i),
              values: (_u, ticks) => ticks.map((t) => rows[order[t]]?.[dimension] ?? ""),
              grid: { show: false },
            },
        { size: 60 },
      ],
      series: [
        { label: dimension },
        ...measures.map((m, i) => ({
          label: m,
          stroke: colors[i % colors.length],
          fill: isTime ? undefined : colors[i % colors.length] + "88",
          paths: isTime ? undefined : uPlot.paths.bars!({ size: [0.6, 120], align: 0 }),
          points: { show: isTime },
        })),
      ],
    },
    data,
    chartEl,
  );
  chartEl.dataset.kind = isTime ? "line" : "bar";
}

// ---- fields ----

async function facets(g: number): Promise<Facet[] | null> {
  const aside = $("fields");
  delete aside.dataset.ready;
  aside.replaceChildren(el("p", "note", "counting fields…"));
  try {
    let answer;
    for (;;) {
      answer = await call<{ sampled: number; fields: Facet[] }>(
        `${logstorePath()}/facets`,
        params({ query: splitSql(effectiveQuery())[0] }),
      );
      if (g !== generation) return null;
      if ((answer.headers.get("x-log-progress") ?? "Complete") === "Complete") break;
      await pause(POLL_MS);
    }
    const { sampled, fields } = answer.body;
    aside.replaceChildren(el("p", "note", sampled ? `Top values in the newest ${sampled.toLocaleString("en-US")} matches` : "No fields"));
    for (const field of fields.slice(0, 40)) {
      const details = el("details");
      details.dataset.field = field.name;
      if (field.distinct > 0 && field.distinct <= 20) details.open = true;
      const summary = el("summary");
      summary.append(el("strong", "", field.name), el("span", "", `${field.present}`));
      details.append(summary);
      const ul = el("ul");
      for (const { value, count } of field.top) {
        const li = el("li");
        const v = el("span", "value", value === "" ? "(empty)" : value);
        v.title = `add ${field.name}: ${value}`;
        v.addEventListener("click", () => addFilter(field.name, value, false));
        const not = el("button", "not", "−");
        not.type = "button";
        not.title = `exclude ${field.name}: ${value}`;
        not.addEventListener("click", () => addFilter(field.name, value, true));
        li.append(v, el("span", "count", String(count)), not);
        ul.append(li);
      }
      details.append(ul);
      aside.append(details);
    }
    aside.dataset.ready = String(g);
    return fields;
  } catch {
    if (g === generation) aside.replaceChildren(el("p", "note", "fields unavailable"));
    return null;
  }
}

function fieldKey(name: string) {
  const tag = name.match(/^__tag__:(.+)$/);
  return tag ? `__tag__:${tag[1]}` : name;
}

function addFilter(name: string, value: string, exclude: boolean) {
  const [typed, ...sql] = splitSql(state.query);
  const term = `${exclude ? "not " : ""}${fieldKey(name)}: ${quote(value)}`;
  const base = typed.trim();
  const next = base && base !== "*" ? `${base} and ${term}` : term;
  state.query = sql.length ? `${next} | ${sql.join("|").trim()}` : next;
  showState();
  search(true);
}

// ---- context and traces ----

async function showTrace(trace: string, at: number) {
  const panel = $("panel");
  panel.hidden = false;
  $("panel-title").textContent = `Trace ${trace}`;
  const list = $("panel-logs");
  list.replaceChildren(el("li", "note", "loading…"));
  list.dataset.kind = "trace";
  try {
    const logs: Log[] = [];
    for (let page = 0; page < 10; page++) {
      const { body } = await call<Logs>(logstorePath(), {
        type: "log",
        from: at - TRACE_WINDOW,
        to: at + TRACE_WINDOW + 1,
        query: `trace_id: ${quote(trace)}`,
        line: PAGE,
        offset: logs.length,
        reverse: false,
      });
      if (body.meta.progress !== "Complete") {
        page--;
        await pause(POLL_MS);
        continue;
      }
      logs.push(...body.data);
      if (body.data.length < PAGE) break;
    }
    list.replaceChildren(...logs.map((log) => renderLog(log, [])));
  } catch (e) {
    list.replaceChildren(el("li", "error", (e as Error).message));
  }
}

async function showContext(log: Log) {
  const panel = $("panel");
  panel.hidden = false;
  $("panel-title").textContent = `Context of the log at ${timeOf(log)}`;
  const list = $("panel-logs");
  list.dataset.kind = "context";
  list.replaceChildren(el("li", "note", "loading…"));
  try {
    let body: { logs: Log[]; progress: string };
    for (;;) {
      ({ body } = await call<{ logs: Log[]; progress: string }>(logstorePath(), {
        type: "context_log",
        pack_id: log["__tag__:__pack_id__"] ?? "",
        pack_meta: log.__pack_meta__,
        back_lines: CONTEXT_LINES,
        forward_lines: CONTEXT_LINES,
      }));
      if (body.progress === "Complete" || $("panel").hidden) break;
      await pause(POLL_MS);
    }
    list.replaceChildren(...body.logs.map((l) => renderLog(l, [], l.__index_number__ === "0")));
  } catch (e) {
    list.replaceChildren(el("li", "error", (e as Error).message));
  }
}

// ---- live tail ----

function stopLive() {
  if (liveTimer !== undefined) clearInterval(liveTimer);
  liveTimer = undefined;
}

function restartLive() {
  stopLive();
  if (!state.live || splitSql(state.query).length > 1) return;
  const g = generation;
  liveTimer = window.setInterval(() => tail(g), LIVE_EVERY_MS);
}

/// Whether a tail call is out: ticks do not overlap.
let tailing = false;
/// Live ticks so far; every [`LIVE_HISTOGRAM_TICKS`]th also moves the histogram on.
let ticks = 0;
const LIVE_HISTOGRAM_TICKS = 5;
/// The fields of the current search, for the histogram's level bars.
let lastFields: Promise<Facet[] | null> = Promise.resolve(null);

async function tail(g: number) {
  if (tailing) return;
  tailing = true;
  const newest = Number($("logs").firstElementChild?.getAttribute("data-time") ?? window_.from);
  const now = Math.floor(Date.now() / 1000) + 1;
  const ask = {
    type: "log",
    from: Math.min(newest, now - 1),
    to: now,
    query: effectiveQuery(),
    line: PAGE,
    offset: 0,
    reverse: true,
  };
  try {
    // The same call until it is complete: a new range each time would start a new query
    // each time, and a server with a short deadline would never finish one.
    let body: Logs;
    for (;;) {
      ({ body } = await call<Logs>(logstorePath(), ask));
      if (g !== generation || body.meta.progress === "Complete") break;
      await pause(POLL_MS);
    }
    if (g !== generation) return;
    const fresh = body.data.filter((log) => !seen.has(log.__pack_meta__ ?? JSON.stringify(log)));
    const list = $("logs");
    const highlight = terms(effectiveQuery());
    for (const log of fresh.reverse()) {
      seen.add(log.__pack_meta__ ?? JSON.stringify(log));
      const li = renderLog(log, highlight);
      li.classList.add("fresh");
      list.prepend(li);
    }
    if (fresh.length) {
      const total = Number($("total").dataset.total ?? 0) + fresh.length;
      $("total").dataset.total = String(total);
      $("total").textContent = `${total.toLocaleString("en-US")} logs`;
      list.dataset.count = String(list.childElementCount);
    }
    // The histogram follows the clock: the relative range, counted again.
    if (++ticks % LIVE_HISTOGRAM_TICKS === 0 && state.range !== "abs" && g === generation) {
      window_ = currentWindow();
      await histogram(g, lastFields);
    }
  } catch {
    // The next tick tries again.
  } finally {
    tailing = false;
  }
}

// ---- errors ----

function hideError() {
  $("query-error").hidden = true;
  $("query-mark").replaceChildren();
}

function showError(error: ApiError) {
  const box = $("query-error");
  box.hidden = false;
  box.textContent = `${error.code}: ${error.message}`;
  box.dataset.code = error.code;
  $("progress").textContent = "";
  if (error.position === undefined) return;
  // The position is in the query sent; point at it in the box when the box's text is it.
  const sent = effectiveQuery();
  const typed = state.query;
  const shift = sent.indexOf(splitSql(typed)[0].trim());
  const at = error.position - (shift >= 0 ? shift : 0);
  box.dataset.position = String(at);
  const mark = $("query-mark");
  const text = $<HTMLInputElement>("query").value;
  const before = document.createTextNode(text.slice(0, at));
  const m = el("mark", "", text.slice(at, at + 1) || " ");
  mark.replaceChildren(before, m);
  const caret = el("div", "caret");
  caret.textContent = `${typed}\n${" ".repeat(Math.max(0, at))}^ ${error.reason ?? error.message}`;
  box.replaceChildren(el("span", "", `${error.code}: `), caret);
}

// ---- start ----

function wire() {
  $("signin").addEventListener("submit", signIn);
  $("signin-kind").addEventListener("change", showKind);
  $("signout").addEventListener("click", signOut);
  $("search").addEventListener("submit", (e) => {
    e.preventDefault();
    readControls();
    state.view = "logs";
    search(true);
  });
  for (const id of ["project", "logstore", "range", "from", "to"]) {
    $(id).addEventListener("change", () => {
      readControls();
      if (state.range === "abs" && !(state.to > state.from)) {
        const w = currentWindow();
        state.from = w.from;
        state.to = w.to;
      }
      showState();
      search(true);
    });
  }
  for (const key of CHIP_KEYS) {
    $(`chip-${key}`).addEventListener("change", () => {
      readControls();
      search(true);
    });
  }
  const levels = $("levels");
  for (const level of LEVELS) {
    const b = el("button", "", level);
    b.type = "button";
    b.dataset.level = level;
    b.addEventListener("click", () => {
      state.levels = state.levels.includes(level) ? state.levels.filter((l) => l !== level) : [...state.levels, level];
      showState();
      search(true);
    });
    levels.append(b);
  }
  $("live").addEventListener("change", () => {
    state.live = $<HTMLInputElement>("live").checked;
    if (state.live && state.range === "abs") state.range = "15m";
    showState();
    search(false);
  });
  $("panel-close").addEventListener("click", () => {
    $("panel").hidden = true;
    state.view = "logs";
    writeUrl(true);
  });
  new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting) && session && !$("logs").hidden) more(generation);
  }).observe($("more"));
  window.addEventListener("popstate", () => {
    state = readUrl();
    if (session) {
      settle();
      showState();
      search(false);
    }
  });
  // The chart follows its box: the window, and the trace or context panel opening.
  new ResizeObserver(() => {
    const width = Math.max($("histogram").clientWidth, 300);
    if (chart && Math.abs(chart.width - width) > 1) chart.setSize({ width, height: 160 });
  }).observe($("histogram"));
}

async function main() {
  wire();
  state = readUrl();
  const response = await fetch("/ui/session", { credentials: "same-origin" });
  const body = await response.json().catch(() => ({}));
  if (response.ok) started(body as SessionInfo);
  else showSignIn(body?.demo);
}

main();
