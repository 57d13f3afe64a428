"""The Hydra configs (``mtlheads.conf``): shipped inside the package, edited here at the top level."""
