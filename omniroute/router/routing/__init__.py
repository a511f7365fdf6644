"""The routing engine: rules that pick a queue, and the dispatcher that makes offers."""
