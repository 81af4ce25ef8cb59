// The package's entry: the generated client and its operations, as seed 001 imports them
// (`import { client, createOrg } from "@keyplane/sdk-dev"`).
export * from "./client/index.js";
export { client } from "./client/client.gen.js";
