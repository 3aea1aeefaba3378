"""An example nasforge plugin: a space, a strategy, a block and a data provider (see the package README)."""
