/**
 * Runs `run` every `ms`, but never while its last run is still going: a run
 * held up by a host that does not answer is not overtaken by the next tick,
 * so runs never pile up (issue 16: the 2 s timer started a new resume while
 * the last one ran). Errors go to `onError`. Returns the function that stops it.
 */
export function everyUnlessRunning(run: () => Promise<unknown>, ms: number, onError: (err: unknown) => void): () => void {
  let running = false;
  const timer = setInterval(() => {
    if (running) return;
    running = true;
    run()
      .catch(onError)
      .finally(() => (running = false));
  }, ms);
  return () => clearInterval(timer);
}
