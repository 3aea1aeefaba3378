"""Search spaces: one file per space; `base.TokenSpace` gives every space sampling, mutation and JSON."""
