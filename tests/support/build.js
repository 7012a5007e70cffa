// jest's global setup: the tests start the compiled server, so the build must be current.
const { execFileSync } = require("node:child_process");
const path = require("node:path");

module.exports = () => {
  execFileSync(process.execPath, [path.join(__dirname, "../../scripts/build.js")], { stdio: "inherit" });
};
