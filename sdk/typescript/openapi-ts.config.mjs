// `make sdk` regenerates src/client from openapi.json, the document the gateway serves.
// The generated code is never edited by hand.
export default {
  input: "./openapi.json",
  output: { path: "./src/client", importFileExtension: ".js" },
  plugins: ["@hey-api/client-fetch", "@hey-api/typescript", "@hey-api/sdk"],
};
