"""Fast benchmark helpers: strategies driven against lookup tables without a store or workers."""
