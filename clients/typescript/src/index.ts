/**
 * drawer-agent client for POS backends: publish cash events, get the agent's ack, configure it.
 *
 *     const c = await Client.connect("mqtt://broker:1883", "salon-42", { keyId, key });
 *     const ack = await c.publish({ type: "sale", terminal_id: "T1" });
 *
 * It gets right what the raw contract leaves to you: a fresh `event_id` and `occurred_at` when
 * missing, the JWS signature, TCP_NODELAY, waiting for the agent's ack (not the broker's
 * PUBACK), and re-publishing the *same* payload until that ack arrives, across broker restarts.
 * The Python client (clients/python) does the same; both read one contract.json.
 */

import { randomUUID, createPrivateKey, type KeyObject } from "node:crypto";
import { EventEmitter } from "node:events";
import { readFileSync } from "node:fs";
import * as net from "node:net";
import * as tls from "node:tls";
import { SignJWT } from "jose";
import { MqttClient, type IClientOptions, type IClientPublishOptions } from "mqtt";

/** The contract schema generated from the agent's own models (agent/core/contract.py). */
export const CONTRACT: {
  topics: Record<string, string>;
  requests: string[];
  $defs: Record<string, any>;
} = JSON.parse(readFileSync(new URL("../src/contract.json", import.meta.url), "utf8"));

export const REQUESTS: readonly string[] = CONTRACT.requests;
const REPLAY = "replay:";

/** One cash event; `event_id` and `occurred_at` are filled in when missing. */
export interface CashEvent {
  type: string;
  terminal_id: string;
  event_id?: string;
  occurred_at?: string;
  [field: string]: unknown;
}

/** The agent's answer to one cash event (see the README's ack table). */
export interface Ack {
  event_id: string | null;
  status: string;
  terminal_id?: string | null;
  printer_id?: string | null;
  attempts?: number;
  latency_ms?: number | null;
  detail?: string;
  drawer_open?: boolean | null;
  [field: string]: unknown;
}

/** One message from `watch()`: kind is status, printer, inventory, config or alert. */
export interface Update {
  kind: "status" | "printer" | "inventory" | "config" | "alert";
  topic: string;
  data: any;
}

export interface ClientOptions {
  /** Key id for signing (with `key`): an HS256 secret of >= 32 bytes or an EC P-256 PEM. */
  keyId?: string;
  key?: string | Uint8Array;
  username?: string;
  password?: string;
  clientId?: string;
  /** Re-publish the same payload this often until the agent answers (ms). */
  retryEveryMs?: number;
  /** Total time for one publish or request (ms). */
  timeoutMs?: number;
  tokenTtlS?: number;
  /** TLS options for mqtts:// (ca, cert, key, servername...). */
  tls?: tls.ConnectionOptions;
}

/** Base of every error this client raises. */
export class ClientError extends Error {}

/** Not connected, or the agent did not answer in time. */
export class AgentError extends ClientError {}

/** No ack from the agent within the total timeout: the drawer state is unknown. */
export class NoAck extends AgentError {
  constructor(
    readonly eventId: string,
    seconds: number,
    readonly sent: number,
  ) {
    super(`no ack for ${eventId} within ${seconds.toFixed(1)} s (${sent} publishes)`);
  }
}

/** The agent refused the event (malformed, unsigned, forged, rate limited, ...). */
export class Rejected extends ClientError {
  readonly reason: string;
  constructor(readonly ack: Ack) {
    super(`rejected: ${ack.detail ?? ""}`);
    this.reason = String(ack.detail ?? "");
  }
}

/** An error response to a request; `code` is one of the contract's error codes. */
export class RequestFailed extends ClientError {
  constructor(
    readonly name: string,
    readonly code: string,
    readonly detail: string,
    readonly response: Record<string, unknown>,
  ) {
    super(`${name}: ${code}: ${detail}`);
  }
}

type Signer = { alg: "HS256" | "ES256"; key: Uint8Array | KeyObject };

export class Client {
  /** Every PUBLISH of an event or request, retries included. */
  publishes = 0;
  connects = 0;
  readonly shopId: string;
  private readonly topics: Record<string, string>;
  private readonly mqtt: MqttClient;
  private readonly signer: Signer | null;
  private readonly keyId: string | undefined;
  private readonly retryEveryMs: number;
  private readonly timeoutMs: number;
  private readonly tokenTtlS: number;
  private readonly changed = new EventEmitter();
  private readonly acks = new Map<string, Ack[]>();
  private anonymous: Array<{ at: number; ack: Ack }> = [];
  private readonly responses = new Map<string, Array<Record<string, any>>>();
  private readonly retained = new Map<string, Update>();
  private readonly watchers = new Set<(u: Update) => void>();

  private constructor(url: URL, shopId: string, options: ClientOptions) {
    if ((options.keyId === undefined) !== (options.key === undefined)) {
      throw new Error("give both keyId and key, or neither");
    }
    this.shopId = shopId;
    this.keyId = options.keyId;
    this.signer = signerFor(options.key);
    this.retryEveryMs = options.retryEveryMs ?? 2000;
    this.timeoutMs = options.timeoutMs ?? 15000;
    this.tokenTtlS = options.tokenTtlS ?? 30;
    this.changed.setMaxListeners(0);
    this.topics = Object.fromEntries(
      Object.entries(CONTRACT.topics).map(([k, v]) => [k, v.replace("{shop_id}", shopId)]),
    );
    const secure = url.protocol === "mqtts:";
    const host = url.hostname || "127.0.0.1";
    const port = Number(url.port) || (secure ? 8883 : 1883);
    const mqttOptions: IClientOptions = {
      protocolVersion: 5,
      // A persistent session under a stable id: acks the agent sends while we reconnect
      // wait for us at the broker instead of being lost.
      clientId: options.clientId ?? `dac-${shopId}-${randomUUID().slice(0, 12)}`,
      clean: false,
      properties: { sessionExpiryInterval: 3600 },
      keepalive: 30,
      reconnectPeriod: 200,
      connectTimeout: 5000,
      username: options.username ?? (url.username ? decodeURIComponent(url.username) : undefined),
      password: options.password ?? (url.password ? decodeURIComponent(url.password) : undefined),
    };
    // Our own socket, so TCP_NODELAY is on: Nagle would hold each event behind our PUBACK.
    const streamBuilder = () => {
      const socket = secure
        ? tls.connect({ host, port, servername: host, ...options.tls })
        : net.connect({ host, port });
      socket.setNoDelay(true);
      return socket;
    };
    this.mqtt = new MqttClient(streamBuilder, mqttOptions);
    this.mqtt.on("connect", () => {
      this.connects += 1;
      this.mqtt.subscribe(
        [
          this.topics.acks,
          this.topics.response.replace("{name}", "#"),
          this.topics.agent_status,
          this.topics.printer_status.replace("{printer_id}", "+"),
          this.topics.alerts,
          this.topics.config,
          this.topics.inventory,
        ],
        { qos: 1 },
        () => this.changed.emit("change"),
      );
    });
    this.mqtt.on("message", (topic, payload, packet) => this.onMessage(topic, payload));
    // Errors (refused connects, resets) are retried by mqtt.js; they must not crash the host.
    this.mqtt.on("error", () => undefined);
  }

  /** Connect to the shop's broker; resolves once connected and subscribed. */
  static async connect(url: string, shopId: string, options: ClientOptions = {}): Promise<Client> {
    const parsed = new URL(url);
    if (parsed.protocol !== "mqtt:" && parsed.protocol !== "mqtts:") {
      throw new Error(`url must be mqtt:// or mqtts://, not ${url}`);
    }
    const client = new Client(parsed, shopId, options);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        client.mqtt.end(true);
        reject(new AgentError(`cannot connect to ${parsed.host}`));
      }, client.timeoutMs);
      client.mqtt.once("connect", () => {
        client.mqtt.subscribe(client.topics.acks, { qos: 1 }, () => {
          clearTimeout(timer);
          resolve();
        });
      });
    });
    return client;
  }

  /** True while the broker connection is up. */
  get connected(): boolean {
    return this.mqtt.connected;
  }

  /** Disconnect (waits for in-flight PUBACKs). */
  async close(): Promise<void> {
    await this.mqtt.endAsync();
  }

  // -- cash events -------------------------------------------------------------------------

  /** The event's id and the exact payload `publish` sends (and re-sends). */
  async prepare(event: CashEvent): Promise<[string, string]> {
    const body: Record<string, unknown> = { ...event };
    body.event_id ??= randomUUID();
    body.occurred_at ??= new Date().toISOString();
    return [String(body.event_id), await this.encode(body)];
  }

  /** Publish one cash event and resolve to the agent's ack (Rejected / NoAck otherwise). */
  async publish(event: CashEvent, options: { timeoutMs?: number } = {}): Promise<Ack> {
    const [eventId, payload] = await this.prepare(event);
    return this.publishPrepared(eventId, payload, options);
  }

  /** Publish `payload` (from `prepare`) until its ack arrives; the same bytes every time. */
  async publishPrepared(
    eventId: string,
    payload: string,
    options: { timeoutMs?: number } = {},
  ): Promise<Ack> {
    const total = options.timeoutMs ?? this.timeoutMs;
    let deadline = Date.now() + total;
    let seen = this.acks.get(eventId)?.length ?? 0;
    const started = Date.now();
    let sent = 0;
    let duplicate: Ack | null = null;
    while (Date.now() < deadline) {
      if (duplicate === null && (await this.send(this.topics.events, payload, deadline))) {
        sent += 1;
      }
      const wait: number =
        duplicate === null ? Math.min(this.retryEveryMs, deadline - Date.now()) : deadline - Date.now();
      const ack: Ack | null = await this.waitFor(() => this.ackAfter(eventId, seen, started), wait);
      if (ack === null) continue;
      if (ack.status === "rejected") throw new Rejected(ack);
      if (ack.status === "duplicate" && sent > 1 && duplicate === null) {
        // Our own retry answered: the first copy's real outcome is on its way (the broker
        // keeps it in our session, the agent resends unsent acks).
        duplicate = ack;
        seen = this.acks.get(eventId)?.length ?? 0;
        deadline = Math.min(deadline, Date.now() + this.retryEveryMs * 2);
        continue;
      }
      return ack;
    }
    if (duplicate !== null) return duplicate;
    throw new NoAck(eventId, total / 1000, sent);
  }

  private ackAfter(eventId: string, seen: number, since: number): Ack | null {
    const acks = this.acks.get(eventId) ?? [];
    if (acks.length > seen) return acks[seen];
    // A forged or unverifiable token gets an ack with event_id null (the agent cannot trust
    // its claims): matched by time, as docs/signing.md says.
    return this.anonymous.find((a) => a.at >= since && a.ack.status === "rejected")?.ack ?? null;
  }

  // -- requests ----------------------------------------------------------------------------

  /** Ask the agent (config/get, terminals/set, printers/kick, ...); resolve to `data`. */
  async request(
    name: string,
    data: Record<string, unknown> = {},
    options: { timeoutMs?: number } = {},
  ): Promise<any> {
    if (!REQUESTS.includes(name)) {
      throw new Error(`${name} is not a request; known: ${REQUESTS.join(", ")}`);
    }
    const transaction = randomUUID();
    const body: Record<string, unknown> = { ...data, transaction };
    if (this.signer !== null) body.jti ??= transaction;
    const payload = await this.encode(body);
    const topic = this.topics.request.replace("{name}", name);
    const total = options.timeoutMs ?? this.timeoutMs;
    const deadline = Date.now() + total;
    let sent = 0;
    while (Date.now() < deadline) {
      if (await this.send(topic, payload, deadline)) sent += 1;
      const wait = Math.min(this.retryEveryMs, deadline - Date.now());
      const response = await this.waitFor(() => this.responseTo(transaction, sent), wait);
      if (response === null) continue;
      if (response.status === "ok") return response.data;
      const error = response.error ?? {};
      throw new RequestFailed(name, String(error.code), String(error.detail ?? ""), response);
    }
    throw new AgentError(`no response to ${name} within ${total / 1000} s (${sent} publishes)`);
  }

  private responseTo(transaction: string, sent: number): Record<string, any> | null {
    let got = this.responses.get(transaction) ?? [];
    if (sent > 1) {
      // Our own retry of a token the agent already took: the first answer counts.
      got = got.filter((r) => !String(r.error?.detail ?? "").startsWith(REPLAY));
    }
    return got[0] ?? null;
  }

  // -- watching ----------------------------------------------------------------------------

  /** Agent status, printer status, inventory, config and alerts; retained ones known first. */
  async *watch(): AsyncGenerator<Update, void, undefined> {
    const queue: Update[] = [...this.retained.values()];
    let wake: (() => void) | null = null;
    const listener = (u: Update) => {
      queue.push(u);
      wake?.();
    };
    this.watchers.add(listener);
    try {
      while (true) {
        while (queue.length > 0) yield queue.shift() as Update;
        await new Promise<void>((resolve) => (wake = resolve));
        wake = null;
      }
    } finally {
      this.watchers.delete(listener);
    }
  }

  /** The last retained value of `inventory`, `config` or `status` seen, or undefined. */
  latest(kind: Update["kind"]): any {
    return [...this.retained.values()].reverse().find((u) => u.kind === kind)?.data;
  }

  // -- plumbing ----------------------------------------------------------------------------

  private onMessage(topic: string, raw: Buffer): void {
    if (raw.length === 0) return; // a retained message being cleared
    let data: any;
    try {
      data = JSON.parse(raw.toString("utf8"));
    } catch {
      return;
    }
    if (topic === this.topics.acks && data && typeof data === "object") {
      const ack = data as Ack;
      if (ack.event_id == null) {
        this.anonymous.push({ at: Date.now(), ack });
        this.anonymous = this.anonymous.slice(-100);
      } else {
        const list = this.acks.get(ack.event_id) ?? [];
        list.push(ack);
        this.acks.set(ack.event_id, list);
      }
    } else if (topic.startsWith(this.topics.response.replace("{name}", ""))) {
      if (data && typeof data.transaction === "string") {
        const list = this.responses.get(data.transaction) ?? [];
        list.push(data);
        this.responses.set(data.transaction, list);
      }
    } else {
      const update: Update = { kind: this.kindOf(topic), topic, data };
      if (update.kind !== "alert") this.retained.set(topic, update);
      for (const watcher of this.watchers) watcher(update);
    }
    this.changed.emit("change");
  }

  private kindOf(topic: string): Update["kind"] {
    if (topic === this.topics.agent_status) return "status";
    if (topic === this.topics.inventory) return "inventory";
    if (topic === this.topics.config) return "config";
    if (topic === this.topics.alerts) return "alert";
    return "printer";
  }

  /** Resolve to `ready()`'s first non-null value after a message, or null after `ms`. */
  private waitFor<T>(ready: () => T | null, ms: number): Promise<T | null> {
    const now = ready();
    if (now !== null || ms <= 0) return Promise.resolve(now);
    return new Promise((resolve) => {
      const check = () => {
        const value = ready();
        if (value !== null) {
          done();
          resolve(value);
        }
      };
      const done = () => {
        clearTimeout(timer);
        this.changed.off("change", check);
      };
      const timer = setTimeout(() => {
        done();
        resolve(null);
      }, ms);
      this.changed.on("change", check);
    });
  }

  /** One QoS 1 PUBLISH once connected (before `deadline`); true when the broker took it. */
  private async send(topic: string, payload: string, deadline: number): Promise<boolean> {
    const connected = await this.waitFor(
      () => (this.mqtt.connected ? true : null),
      deadline - Date.now(),
    );
    if (connected === null) return false;
    const options: IClientPublishOptions = { qos: 1, retain: false };
    // Not awaited to the PUBACK: after a broker loss mqtt.js resends it from its session,
    // and the next retry publishes again anyway.
    this.mqtt.publish(topic, payload, options, () => undefined);
    this.publishes += 1;
    return true;
  }

  private async encode(body: Record<string, unknown>): Promise<string> {
    if (this.signer === null) return JSON.stringify(body);
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ ...body, iat: now, exp: now + this.tokenTtlS })
      .setProtectedHeader({ alg: this.signer.alg, kid: this.keyId })
      .sign(this.signer.key);
  }
}

/** HS256 for a shared secret (>= 32 bytes), ES256 for an EC P-256 private key PEM. */
function signerFor(key: string | Uint8Array | undefined): Signer | null {
  if (key === undefined) return null;
  const raw = typeof key === "string" ? new TextEncoder().encode(key) : key;
  const text = new TextDecoder().decode(raw);
  if (text.includes("PRIVATE KEY")) return { alg: "ES256", key: createPrivateKey(text) };
  if (raw.length < 32) {
    throw new Error(`an HS256 secret needs at least 32 bytes, this has ${raw.length}`);
  }
  return { alg: "HS256", key: raw };
}
