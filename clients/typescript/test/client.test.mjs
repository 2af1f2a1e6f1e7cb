// The TypeScript client end to end: real mosquitto, the real agent (signatures required), real
// virtual printers, all started by tests/clients/test_typescript_client.py, which also serves a
// loopback control endpoint (printer pulses, agent counters, a broker restart). The same
// scenarios run through the Python client in tests/clients/test_python_client.py.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { Client, Rejected, RequestFailed } from "../dist/index.js";

const { DA_MQTT_URL: url, DA_SHOP: shop, DA_KEY_ID: keyId, DA_SECRET: key, DA_CONTROL: control } =
  process.env;
assert.ok(url && shop && keyId && key && control, "run through tests/clients/test_typescript_client.py");

async function state(query = "") {
  return (await fetch(`${control}/state${query}`)).json();
}

let c;
before(async () => {
  c = await Client.connect(url, shop, { keyId, key, retryEveryMs: 1000, timeoutMs: 30000 });
});
after(async () => {
  await c.close();
});

test("an event opens the drawer", async () => {
  const before = await state();
  const ack = await c.publish({ type: "sale", terminal_id: "T1" });
  assert.equal(ack.status, "opened");
  assert.equal(ack.printer_id, "front");
  assert.ok(ack.event_id);
  const now = await state();
  assert.equal(now.pulses.front - before.pulses.front, 1);
  assert.equal(now.pulses.back, before.pulses.back);
});

test("a duplicate gives duplicate", async () => {
  const before = await state();
  const [eventId, payload] = await c.prepare({ type: "refund", terminal_id: "T1" });
  const first = await c.publishPrepared(eventId, payload);
  const again = await c.publishPrepared(eventId, payload);
  assert.equal(first.status, "opened");
  assert.equal(again.status, "duplicate");
  assert.equal(again.detail, "already handled: opened");
  assert.equal((await state()).pulses.front - before.pulses.front, 1);
});

test("a config change over MQTT takes effect on the next event", async () => {
  const config = await c.request("config/get");
  const revision = config.terminals.T3.revision;
  assert.equal(config.terminals.T3.printer_id, "back");
  const changed = await c.request("terminals/set", { terminal_id: "T3", printer_id: "front", revision });
  assert.equal(changed.new, "front");
  const ack = await c.publish({ type: "sale", terminal_id: "T3" });
  assert.equal(ack.status, "opened");
  assert.equal(ack.printer_id, "front");
  await assert.rejects(
    c.request("terminals/set", { terminal_id: "T3", printer_id: "back", revision }),
    (err) => err instanceof RequestFailed && err.code === "conflict",
  );
  const kicked = await c.request("printers/kick", { printer_id: "front" });
  assert.equal(kicked.status, "opened");
  assert.equal(kicked.drawer_open, true);
  assert.equal((await state()).terminals.T3, "front");
});

test("a forged request or event is refused", async () => {
  const forger = await Client.connect(url, shop, { keyId, key: "x".repeat(40), timeoutMs: 10000 });
  try {
    await assert.rejects(
      forger.request("terminals/set", { terminal_id: "T1", printer_id: "back" }),
      (err) => err instanceof RequestFailed && err.code === "signature" && /bad_signature/.test(err.detail),
    );
    await assert.rejects(
      forger.publish({ type: "sale", terminal_id: "T1" }),
      (err) => err instanceof Rejected && /bad_signature/.test(err.reason),
    );
  } finally {
    await forger.close();
  }
  assert.equal((await state()).terminals.T1, "front");
});

test("watch() gives status, config and inventory", async () => {
  const seen = new Map();
  for await (const update of c.watch()) {
    if (!seen.has(update.kind)) seen.set(update.kind, update.data);
    if (["status", "config", "inventory"].every((k) => seen.has(k))) break;
  }
  assert.equal(seen.get("status").state, "online");
  assert.deepEqual(Object.keys(seen.get("config").printers).sort(), ["back", "front"]);
  const ids = seen.get("inventory").printers.map((p) => p.printer_id).sort();
  assert.deepEqual(ids, ["back", "front"]);
});

test("a broker restart mid-publish still gives exactly one pulse", async () => {
  const before = await state();
  const connects = c.connects;
  const publishing = c.publish({ type: "sale", terminal_id: "T1" });
  // The control endpoint waits for the pulse, then kills mosquitto (-9) and starts it again,
  // while the ack still waits for the drawer sensor.
  const restarted = await fetch(`${control}/restart-broker?printer=front&pulses=${before.pulses.front + 1}`, {
    method: "POST",
  });
  assert.equal(restarted.status, 200);
  const ack = await publishing;
  // The agent's own ack may be lost with the broker; the retry then names the first outcome.
  assert.ok(
    ack.status === "opened" || (ack.status === "duplicate" && ack.detail === "already handled: opened"),
    JSON.stringify(ack),
  );
  assert.ok(c.connects > connects);
  const now = await state(`?opened=${before.opened + 1}`);
  assert.equal(now.pulses.front - before.pulses.front, 1);
  assert.equal(now.opened - before.opened, 1);
});
