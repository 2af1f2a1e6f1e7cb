// The TypeScript client's half of bench/bench_clients.py: DA_N sequential publishes → Ack,
// rotating over tills T0..T3; prints one JSON line {ms: [...], statuses: {...}}.
import { Client } from "../clients/typescript/dist/index.js";

const n = Number(process.env.DA_N ?? 200);
const c = await Client.connect(process.env.DA_MQTT_URL, "bench");
for (let i = 0; i < 5; i++) await c.publish({ type: "sale", terminal_id: "T0" }); // warm-up
const ms = [];
const statuses = {};
for (let i = 0; i < n; i++) {
  const t0 = process.hrtime.bigint();
  const ack = await c.publish({ type: "sale", terminal_id: `T${i % 4}` });
  ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
  statuses[ack.status] = (statuses[ack.status] ?? 0) + 1;
}
await c.close();
console.log(JSON.stringify({ ms, statuses }));
