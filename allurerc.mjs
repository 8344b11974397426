// Allure 3 configuration for `make report`. The categories repeat reports/allure-results/
// categories.json (written by fixtures/reporting.py), which Allure 3's default report ignores.
import { defineConfig } from "allure";

export default defineConfig({
  name: "ESP-AT WebSocket conformance",
  output: "./reports/allure-report",
  // Kept between runs (a CI cache or artifact) it gives trends per firmware version.
  historyPath: "./reports/history.jsonl",
  categories: [
    {
      name: "Known deviations of shipping ESP-AT",
      matchedStatuses: ["failed"],
      messageRegex: "[\\s\\S]*KNOWN DEVIATION KD-\\d+ of [\\s\\S]*",
    },
    { name: "Conformance failures (new)", matchedStatuses: ["failed"] },
    { name: "Harness or infrastructure problems", matchedStatuses: ["broken"] },
  ],
  plugins: {
    awesome: {
      options: {
        reportName: "ESP-AT WebSocket conformance",
        groupBy: ["feature", "story"],
      },
    },
  },
});
