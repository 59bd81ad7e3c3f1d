"""What exists for development and the demo: the embedded broker, the simulated app and users, the tiny world and its model, the demo's report."""
