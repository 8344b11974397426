"""Make a generated Allure 3 report work offline: `python -m tools.offline_report DIR`.

Allure 3.18's report page loads Google Analytics from the internet, unconditionally. Lab machines
often have no internet, and a report of firmware results has no business calling out, so the tag
is removed; the run fails if any reference to it is left (a newer Allure may change the markup).
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

ANALYTICS_HOST = "googletagmanager.com"
_ANALYTICS = re.compile(
    r'<script async src="https://www\.googletagmanager\.com/gtag/js\?id=[^"]*"></script>\s*'
    r"<script>\s*window\.dataLayer.*?</script>", re.DOTALL)


def strip_analytics(html: str) -> str:
    return _ANALYTICS.sub("", html)


def main(report_dir: str) -> int:
    pages = list(Path(report_dir).rglob("*.html"))
    if not pages:
        print(f"no HTML pages under {report_dir}", file=sys.stderr)
        return 1
    left = []
    for page in pages:
        html = strip_analytics(page.read_text(encoding="utf-8"))
        page.write_text(html, encoding="utf-8")
        if ANALYTICS_HOST in html:
            left.append(str(page))
    if left:
        print(f"an analytics reference is still in {left}: update tools/offline_report.py",
              file=sys.stderr)
        return 1
    print(f"{len(pages)} report page(s) in {report_dir} work offline")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "reports/allure-report"))
