"""File input/output: micrographs, the pick table, coordinate formats, particle stacks."""
