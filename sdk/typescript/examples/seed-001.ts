// Seed 001's two samples, as published, but for the package name: the test runs this
// file against a live gateway (overriding baseUrl, as the seed says to for local work).
import { client } from "@keyplane/sdk-dev";
 
client.setConfig({
  baseUrl: "https://prodapi.phosra.com/api/v1",
  headers: {
    Authorization: `Bearer ${process.env.PHOSRA_API_KEY}`,
  },
});

import { createOrg } from "@keyplane/sdk-dev";
 
const { data, error } = await createOrg({
  body: {
    name: "Acme Corp",
    description: "Acme's OCSS integration",
    website_url: "https://acme.example.com",
  },
  headers: {
    Authorization: `Bearer ${process.env.PHOSRA_API_KEY}`,
  },
});
 
if (error) {
  // error.message, error.code, error.error (HTTP status text)
  throw new Error(`createOrg failed: ${error.message}`);
}
 
console.log("Created org:", data.id, data.slug);
