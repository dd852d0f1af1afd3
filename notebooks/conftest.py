"""nbval runs notebooks 01-03 here with their defaults. Notebook 04's defaults run
configs/smoke.yaml, which tests/test_notebooks.py runs once (results in a temporary folder) and
checks; a second, unchecked run of the same sweep here would only cost time."""

collect_ignore = ["04_report.ipynb"]
