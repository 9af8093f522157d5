"""Reference measurements for `raylan bench`, run on the cluster as Ray jobs."""
