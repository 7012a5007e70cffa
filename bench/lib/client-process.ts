/** A client process of a bench run: runs each job it is sent and answers its measurement. */
import { runJobHere, type Job } from "./jobs";

process.on("message", (job: Job) => {
  runJobHere(job).then(
    (measurement) => process.send!({ measurement }),
    (error: unknown) => process.send!({ error: error instanceof Error ? error.message : String(error) }),
  );
});
