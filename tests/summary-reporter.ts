import type { Reporter, TestModule } from "vitest/node";

/**
 * Prints `N passed, N failed` alone on the last line of `npm test` (CI reads that line). A test file that fails to
 * load, or an error outside any test, counts as one failure so it can never read as green.
 */
export default class SummaryReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>, unhandledErrors: ReadonlyArray<unknown>): void {
    let passed = 0;
    let failed = unhandledErrors.length;
    for (const module of testModules) {
      let moduleFailures = 0;
      for (const test of module.children.allTests()) {
        const state = test.result().state;
        if (state === "passed") passed++;
        else if (state === "failed") moduleFailures++;
      }
      if (moduleFailures === 0 && module.state() === "failed") moduleFailures = 1;
      failed += moduleFailures;
    }
    console.log(`\n${passed} passed, ${failed} failed`);
  }
}
