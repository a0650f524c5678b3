"""The model getters: each builds a model and its inputs from its own seeded generator."""
