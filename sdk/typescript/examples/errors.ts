// How a refusal reads: `error` is the contract's one error shape, typed from the document.
import { client, createOrg } from "@keyplane/sdk-dev";

client.setConfig({ baseUrl: process.env.KEYPLANE_BASE_URL });

const { data, error, response } = await createOrg({
  body: { name: "Never made" },
  headers: { Authorization: `Bearer ${process.env.PHOSRA_API_KEY}` },
});

if (!error) {
  throw new Error(`expected a refusal, got ${JSON.stringify(data)}`);
}
console.log(JSON.stringify({ status: response?.status, message: error.message, code: error.code, error: error.error }));
