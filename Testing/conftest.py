"""pytest configuration: fixtures are split by concern into plugin modules."""

pytest_plugins = ["fixtures_data", "fixtures_servers", "fixtures_mrml", "fixtures_faults", "ci_skips"]
