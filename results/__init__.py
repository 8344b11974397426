"""What a run leaves for people: the run record (the conformance matrix as data), its Markdown,
JSON and HTML forms, the comparison of two runs, and the timeline pictures of timing tests. Pure
code: no pytest, no device; fixtures/reporting.py feeds it."""
