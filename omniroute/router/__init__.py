"""The router: persistence, routing engine, timers and the REST API for agents and supervisors."""
