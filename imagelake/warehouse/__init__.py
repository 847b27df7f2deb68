"""What the warehouse build needs from the domain: the days to rebuild, the file lock."""
