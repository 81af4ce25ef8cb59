// From an account to a working key: sign in, get the developer org (made on first call),
// mint a scoped test key, and list the org's keys. Run with KEYPLANE_BASE_URL,
// KEYPLANE_EMAIL and KEYPLANE_PASSWORD set.
import { client, createApiKey, ensureDevOrg, listApiKeys, login } from "@keyplane/sdk-dev";

client.setConfig({ baseUrl: process.env.KEYPLANE_BASE_URL ?? "http://localhost:8080/api/v1" });

const session = await login({
  body: { email: process.env.KEYPLANE_EMAIL ?? "", password: process.env.KEYPLANE_PASSWORD ?? "" },
});
if (session.error) throw new Error(`login failed: ${session.error.message}`);
const headers = { Authorization: `Bearer ${session.data.access_token}` };

const org = await ensureDevOrg({ headers, body: { name: "Quickstart" } });
if (org.error) throw new Error(`ensureDevOrg failed: ${org.error.message}`);

const created = await createApiKey({
  headers,
  path: { org_id: org.data.id },
  body: { name: "quickstart", environment: "test", scopes: ["read:families"] },
});
if (created.error) throw new Error(`createApiKey failed: ${created.error.message} (${created.error.code})`);

const keys = await listApiKeys({ headers, path: { org_id: org.data.id } });
if (keys.error) throw new Error(`listApiKeys failed: ${keys.error.message}`);

// The secret is `created.data.key`, shown this once: store it, never log it.
console.log(JSON.stringify({
  org_id: org.data.id,
  key_id: created.data.id,
  prefix: created.data.prefix,
  listed: keys.data.map((k) => k.id),
  secret_starts_with: created.data.key.slice(0, 12),
}));
