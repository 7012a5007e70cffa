// Prints one closing line for the jest JSON report and the pytest JUnit report: "tests: N passed, N failed".
const fs = require("node:fs");
const [jestPath, junitPath] = process.argv.slice(2);
let passed = 0;
let failed = 0;
try {
  const jest = JSON.parse(fs.readFileSync(jestPath, "utf8"));
  passed += jest.numPassedTests;
  failed += jest.numFailedTests + jest.numRuntimeErrorTestSuites;
} catch {
  failed += 1; // jest wrote no report: count it as a failure
}
try {
  const xml = fs.readFileSync(junitPath, "utf8");
  const suite = /<testsuite\b[^>]*>/.exec(xml)[0];
  const count = (name) => Number((new RegExp(`\\b${name}="(\\d+)"`).exec(suite) ?? [0, 0])[1]);
  const broken = count("failures") + count("errors");
  passed += count("tests") - broken - count("skipped");
  failed += broken;
} catch {
  failed += 1; // pytest wrote no report
}
console.log(`tests: ${passed} passed, ${failed} failed`);
