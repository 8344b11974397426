// Allure 3 configuration for `make report`. The categories are the run's own
// reports/allure-results/categories.json, written by fixtures/reporting.py from the verdict
// taxonomy (fixtures/verdicts.py): one definition, which Allure 3's default report would ignore.
import { readFileSync } from "node:fs";
import { defineConfig } from "allure";

const categoriesFile = "./reports/allure-results/categories.json";
let categories;
try {
  categories = JSON.parse(readFileSync(categoriesFile, "utf8"));
} catch (error) {
  throw new Error(`${categoriesFile}: ${error.message} (run the suite first: make conformance)`);
}

export default defineConfig({
  name: "ESP-AT WebSocket conformance",
  output: "./reports/allure-report",
  // Kept between runs (a CI cache or artifact) it gives trends per firmware version.
  historyPath: "./reports/history.jsonl",
  categories,
  plugins: {
    awesome: {
      options: {
        reportName: "ESP-AT WebSocket conformance",
        groupBy: ["feature", "story"],
      },
    },
  },
});
