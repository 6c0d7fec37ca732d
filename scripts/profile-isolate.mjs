// Profiles the worker's isolate through wrangler dev's inspector (Chrome DevTools
// protocol): starts V8's sampling CPU profiler, waits for a line on stdin, stops, and
// prints the isolate's busy time (every sample but idle) as JSON, with the top functions.
//
//   node scripts/profile-isolate.mjs ws://127.0.0.1:<inspector port>/ws
import WebSocket from "ws";
import { createInterface } from "node:readline";

const ws = new WebSocket(process.argv[2]);
let nextId = 1;
const pending = new Map();
const call = (method, params = {}) =>
  new Promise((resolve, reject) => {
    const id = nextId++;
    pending.set(id, { resolve, reject });
    ws.send(JSON.stringify({ id, method, params }));
  });
ws.on("message", (data) => {
  const msg = JSON.parse(data.toString());
  const waiter = msg.id && pending.get(msg.id);
  if (waiter) {
    pending.delete(msg.id);
    msg.error ? waiter.reject(new Error(JSON.stringify(msg.error))) : waiter.resolve(msg.result);
  }
});
await new Promise((resolve, reject) => { ws.on("open", resolve); ws.on("error", reject); });
await call("Profiler.enable");
await call("Profiler.setSamplingInterval", { interval: Number(process.argv[3] ?? 1000) });
await call("Profiler.start");
console.log(JSON.stringify({ started: true }));
const lines = createInterface({ input: process.stdin });
for await (const _ of lines) break;
const { profile } = await call("Profiler.stop");
const byNode = new Map(profile.nodes.map((n) => [n.id, n]));
const selfTime = new Map();
const byScript = new Map();
let busy = 0, idle = 0;
profile.samples.forEach((nodeId, i) => {
  const dt = (profile.timeDeltas[i] ?? 0) / 1000;
  const frame = byNode.get(nodeId)?.callFrame ?? {};
  const name = frame.functionName || "(anonymous)";
  if (name === "(idle)") { idle += dt; return; }
  busy += dt;
  const script = frame.url ? frame.url.replace(/^.*\//, "").slice(0, 60) : name;
  byScript.set(script, (byScript.get(script) ?? 0) + dt);
  selfTime.set(name, (selfTime.get(name) ?? 0) + dt);
});
const rank = (m, n) => [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, n).map(([k, ms]) => [k, +ms.toFixed(1)]);
console.log(JSON.stringify({ busy_ms: +busy.toFixed(2), idle_ms: +idle.toFixed(2), by_script: rank(byScript, 12), top: rank(selfTime, 25) }));
ws.close();
