// Precision profiles and the two engines.
