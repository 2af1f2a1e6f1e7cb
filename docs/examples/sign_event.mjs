// Sign one drawer-agent cash event as a JWS compact token and print it (POS backend side, Node >= 18).
//
//   npm install jose
//   # HS256: the same secret bytes as [security.keys] on the agent (at least 32 bytes)
//   DRAWER_KID=pos-2025 DRAWER_SECRET_FILE=pos-2025.secret node sign_event.mjs sale T1
//   # ES256: the POS keeps the P-256 private key (PKCS#8 PEM); the agent gets the public key
//   DRAWER_KID=pos-ec-1 DRAWER_ES256_KEY=pos-ec-1.key.pem node sign_event.mjs refund T2
//
// Publish the printed token on shops/<shop_id>/cash/events with QoS 1 and retain=false.
import { readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { SignJWT, importPKCS8 } from 'jose';

const TYPES = ['sale', 'refund', 'session_open', 'session_close', 'cash_deposit', 'cash_withdrawal'];

export async function signEvent({ kid, type, terminalId, secret, es256KeyPem, eventId, amount, currency, paymentMethod, ttlSeconds = 30 }) {
  if (!TYPES.includes(type)) throw new Error(`type must be one of ${TYPES.join(', ')}`);
  const now = new Date();
  const claims = {
    event_id: eventId ?? randomUUID(),      // the idempotency key: reuse it when you retry a publish
    type,
    terminal_id: terminalId,
    occurred_at: now.toISOString(),         // RFC 3339 (UTC, "Z"); older than max_age_s is refused
  };
  if (amount !== undefined) claims.amount = amount;
  if (currency) claims.currency = currency;
  if (paymentMethod) claims.payment_method = paymentMethod;

  const jws = new SignJWT(claims)
    .setIssuedAt(Math.floor(now.getTime() / 1000))
    .setExpirationTime(Math.floor(now.getTime() / 1000) + ttlSeconds);
  if (es256KeyPem) {
    const key = await importPKCS8(es256KeyPem, 'ES256');
    return jws.setProtectedHeader({ alg: 'ES256', kid, typ: 'JWT' }).sign(key);
  }
  if (!secret || secret.length < 32) throw new Error('the agent requires an HS256 secret of at least 32 bytes');
  return jws.setProtectedHeader({ alg: 'HS256', kid, typ: 'JWT' }).sign(secret);
}

// CLI: node sign_event.mjs TYPE TERMINAL_ID   (key from DRAWER_KID + DRAWER_SECRET_FILE | DRAWER_ES256_KEY)
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [type, terminalId] = process.argv.slice(2);
  const kid = process.env.DRAWER_KID;
  if (!type || !terminalId || !kid) {
    console.error('usage: DRAWER_KID=... (DRAWER_SECRET_FILE=... | DRAWER_ES256_KEY=...) node sign_event.mjs TYPE TERMINAL_ID');
    process.exit(2);
  }
  const token = await signEvent({
    kid,
    type,
    terminalId,
    // Uint8Array: the exact bytes of the file, as the agent reads them
    secret: process.env.DRAWER_SECRET_FILE ? new Uint8Array(readFileSync(process.env.DRAWER_SECRET_FILE)) : undefined,
    es256KeyPem: process.env.DRAWER_ES256_KEY ? readFileSync(process.env.DRAWER_ES256_KEY, 'utf8') : undefined,
  });
  console.log(token);
}
