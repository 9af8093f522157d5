"""Code shared by RayLAN's cluster-side packages."""
