"""tools/offline_report.py removes the analytics tag that Allure 3.18 writes into every report."""
from tools.offline_report import ANALYTICS_HOST, main, strip_analytics

PAGE = """<body>
    <script>window.allure = {};</script>
    <script async src="https://www.googletagmanager.com/gtag/js?id=G-LNDJ3J7WT0"></script>
    <script>
        window.dataLayer = window.dataLayer || [];
        function gtag(){dataLayer.push(arguments);}
        gtag('config', 'G-LNDJ3J7WT0', {"report": "awesome"});
    </script>
    <script>window.reportData = 1;</script>
</body>"""


def test_analytics_tag_is_removed_and_the_rest_kept():
    html = strip_analytics(PAGE)
    assert ANALYTICS_HOST not in html and "gtag" not in html
    assert "window.allure = {};" in html and "window.reportData = 1;" in html


def test_unknown_markup_that_still_calls_out_fails(tmp_path):
    (tmp_path / "index.html").write_text('<script src="https://www.googletagmanager.com/x.js"></script>')
    assert main(str(tmp_path)) == 1


def test_report_dir_without_pages_fails(tmp_path):
    assert main(str(tmp_path)) == 1
