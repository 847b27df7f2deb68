"""What the warehouse build needs from the domain: the days to rebuild, the locks it takes turns by,
the row counts of its tables and the pruning of its build folders."""
