// Allure 3 configuration for `make report`. It reads two files the run wrote into
// reports/allure-results (fixtures/reporting.py): categories.json, the verdict taxonomy's one
// definition (fixtures/verdicts.py), which Allure 3's default report would ignore; and
// report.json, the report's name by firmware, which is also its point in the history (kept one
// point per firmware by tools/report_history.py, run first by `make report`).
import { readFileSync } from "node:fs";
import { defineConfig } from "allure";

const results = "./reports/allure-results";

function written(name) {
  const file = `${results}/${name}`;
  try {
    return JSON.parse(readFileSync(file, "utf8"));
  } catch (error) {
    throw new Error(`${file}: ${error.message} (run the suite first: make conformance)`);
  }
}

const categories = written("categories.json");
const report = written("report.json");

// The tree: command (parentSuite) -> clause (suite) -> test, as fixtures/reporting.py labels them.
const awesome = {
  reportName: `${report.title}: ${report.firmware}`,
  groupBy: ["parentSuite", "suite"],
};

export default defineConfig({
  name: report.name,
  output: "./reports/allure-report",
  // Kept between runs (a CI cache or artifact) it gives each test's history and the trends, one
  // point per firmware version.
  historyPath: "./reports/history.jsonl",
  categories,
  plugins: {
    // reports/allure-report/awesome/index.html: the report to browse.
    awesome: { options: awesome },
    // reports/allure-report/single/index.html: the same report in one file, to attach to a release.
    single: { import: "@allurereport/plugin-awesome", options: { ...awesome, singleFile: true } },
  },
});
