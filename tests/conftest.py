"""Shared fixtures: fixture plugins live in tests/fixtures/ and are registered here."""

pytest_plugins = [
    "tests.fixtures.data",
    "tests.fixtures.broker",
    "tests.fixtures.database",
    "tests.fixtures.embedded",
]
