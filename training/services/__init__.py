"""Training workflows: building a run's configuration, creating and cancelling runs (web),
supervising the subprocess (gpu worker), reading its events, and what a finished run leaves:
a registered endpoint, evaluation scores and trajectories."""
