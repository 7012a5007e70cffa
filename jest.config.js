/**
 * Every test: the unit tests beside the sources, each store's own tests in its folder, and the
 * integration suites under tests/. Workspace packages resolve to their TypeScript sources (the
 * "burr-source" export condition); servers the tests start run the compiled build.
 * @type {import('jest').Config}
 */
module.exports = {
  testEnvironment: "node",
  testEnvironmentOptions: { customExportConditions: ["burr-source", "node", "node-addons"] },
  roots: ["<rootDir>/client/src", "<rootDir>/stores/src", "<rootDir>/server/src", "<rootDir>/tests"],
  testMatch: ["**/*.test.ts"],
  transform: { "^.+\\.ts$": ["ts-jest", { tsconfig: "<rootDir>/tsconfig.json" }] },
  testTimeout: 120000,
  maxWorkers: 2,
  globalSetup: "<rootDir>/tests/support/build.js",
};
