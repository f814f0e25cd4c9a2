"""The reliability suites' drivers: fuzz cases and the raw-message client that sends them, the
victim sessions that must survive them, and process watching (RSS / threads / fds). Shared by
tests/services/test_fuzz.py, tests/bench/test_soak.py and `edgespec bench fuzz|soak`; the
reports and the CLI modes are in edgespec.bench. They start no servers themselves."""
