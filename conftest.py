"""The suite's pytest plugins. Tests see `at` (the AT client) and `ws_endpoint` (a scripted
endpoint of the test WebSocket server); fixtures/ decides what device is behind `at`."""
pytest_plugins = [
    "fixtures.signals",               # SIGTERM ends the run as Ctrl-C does: reports complete
    "fixtures.board",                 # first: fixtures.device imports it
    "fixtures.pki",                   # the test PKI of profile tls (--test-pki); device uses it
    "fixtures.device",
    "fixtures.ws_server",
    "fixtures.links",
    "fixtures.expectations",          # before reporting: it files the expected failures
    "fixtures.run_record",
    "fixtures.reporting",
    "fixtures.timeline",              # after reporting: the picture follows the transcripts
    "fixtures.progress",
    "fixtures.embedded",
]
