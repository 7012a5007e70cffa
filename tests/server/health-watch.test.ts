/** A health Watch without a deadline of its own lasts as long as its watcher: the server's default deadline does not end it. */
import { ServingStatus, watchHealth } from "../support/health";
import { startServerProcess } from "../support/server-process";

test("a Watch outlives --default-deadline-ms", async () => {
  const server = await startServerProcess(["--store", "sqlite::memory:", "--init", "--default-deadline-ms", "300"]);
  const watch = watchHealth(server.address, "", null);
  try {
    await watch.until(ServingStatus.SERVING, 5000);
    await new Promise((resolve) => setTimeout(resolve, 1200));
    expect(watch.endedWith()).toBeNull();
  } finally {
    watch.close();
    await server.stop();
  }
});
