"""What exists: settings, models and their getters, tasks, the metric vocabulary, the registry of which cell runs
where and why not, and the committed cost of each parameter set."""
