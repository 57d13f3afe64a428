"""Head-level code: the head gate and its kinds (masks, hard-concrete L0 gates, importance), physical
head removal, and the gate images."""
