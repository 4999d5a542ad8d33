// Publishes N events round robin over A accounts through one hub node, 16
// requests in flight, and prints {acked, ms}. Kind "custom" posts a custom
// event (no snapshot entry); "phone" posts a phone test (a snapshot entry
// derived from its previous value).
const [url, key, n, accounts, kind] = process.argv.slice(2);
const total = Number(n);
let acked = 0;
let next = 0;
const started = Date.now();
async function one(i) {
  const account = `acct${i % Number(accounts)}`;
  const [path, body] =
    kind === 'phone'
      ? [`phone-tests`, { phoneNumberId: `p${i % 5}`, isActive: i % 2 === 0, displayPhoneNumber: '+15550001111' }]
      : [`events`, { event: 'custom_thing', data: { i, note: 'x'.repeat(40) } }];
  const r = await fetch(`${url}/v1/accounts/${account}/${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body: JSON.stringify(body),
  });
  if (r.status === 201) acked++;
  else throw new Error(`publish answered ${r.status}: ${await r.text()}`);
}
await Promise.all(Array.from({ length: 16 }, async () => { while (next < total) await one(next++); }));
console.log(JSON.stringify({ acked, ms: Date.now() - started }));
