"""Small helpers with no funcbench imports: one home each for an error's first line, longest-first packing, files set aside."""
