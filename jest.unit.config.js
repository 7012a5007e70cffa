/**
 * `npm run test:unit`: the pure modules' tests (validation, batching, auth, config, backoff,
 * codecs, wire mapping, URL redaction), beside their sources. No database, no server: seconds.
 * @type {import('jest').Config}
 */
const base = require("./jest.config.js");
const { globalSetup: _, ...rest } = base;
module.exports = { ...rest, roots: ["<rootDir>/client/src", "<rootDir>/stores/src", "<rootDir>/server/src"], testMatch: ["**/*.unit.test.ts"], testTimeout: 10000 };
