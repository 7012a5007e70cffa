/** The address `burr-state-server health` asks: --address, else BURR_LISTEN reached through loopback. */
import { healthAddress } from "./health-check";

describe("healthAddress", () => {
  test("--address wins over BURR_LISTEN", () => {
    expect(healthAddress("10.0.0.1:9000", { BURR_LISTEN: "0.0.0.0:1" })).toBe("10.0.0.1:9000");
  });

  test("nothing given: the server's default address", () => {
    expect(healthAddress(undefined, {})).toBe("127.0.0.1:50051");
    expect(healthAddress("", {})).toBe("127.0.0.1:50051");
  });

  test.each([
    ["0.0.0.0:6000", "127.0.0.1:6000"],
    ["[::]:6000", "127.0.0.1:6000"],
    [":::6000", "127.0.0.1:6000"],
    [":6000", "127.0.0.1:6000"],
  ])("a wildcard host (%s) is asked through loopback: %s", (listen, address) => {
    expect(healthAddress(undefined, { BURR_LISTEN: listen })).toBe(address);
  });

  test.each(["127.0.0.1:7000", "10.1.2.3:7000", "[::1]:7000", "localhost:7000", "state.internal:50051"])("a specific host (%s) is asked as it is", (listen) => {
    expect(healthAddress(undefined, { BURR_LISTEN: listen })).toBe(listen);
  });
});
