// `make sdk` regenerates src/client from openapi.json, the document the gateway serves.
// The generated code is never edited by hand.
export default {
  input: "./openapi.json",
  // Operators' routes outside the API's base URL (probes, the session-signing keys, the MCP
  // server for agents): not for this client, whose paths all join onto `baseUrl`.
  parser: {
    filters: {
      operations: { exclude: ["GET /health", "GET /ready", "GET /.well-known/jwks.json", "POST /mcp"] },
    },
  },
  output: { path: "./src/client", importFileExtension: ".js" },
  plugins: ["@hey-api/client-fetch", "@hey-api/typescript", "@hey-api/sdk"],
};
